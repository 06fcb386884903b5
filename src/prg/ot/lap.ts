/**
 * Exact linear assignment: for n×n costs find the permutation σ minimising Σ_i C[i, σ(i)].
 *
 * With equal-size minibatches and uniform weights, the exact earth mover's (EMD) plan between the
 * two empirical measures is a vertex of the Birkhoff polytope, i.e. a permutation matrix / n, so
 * minibatch OT (OT-CFM, paper §3.1) reduces to this problem.
 *
 * Algorithm: shortest augmenting paths with dual potentials (Jonker–Volgenant / Kuhn–Munkres in
 * its O(n³) Dijkstra form). Rows are added one at a time; for each, a Dijkstra-like scan over
 * reduced costs C[i, j] − u[i] − v[j] ≥ 0 finds the cheapest augmenting path to a free column,
 * then potentials are updated so reduced costs stay non-negative. Exact for any real costs
 * (ties included); no ε-scaling, no approximation.
 */

export interface Assignment {
  /** rowToCol[i] = column assigned to row i. */
  rowToCol: Int32Array;
  /** colToRow[j] = row assigned to column j. */
  colToRow: Int32Array;
  /** Σ_i C[i, rowToCol[i]] */
  cost: number;
}

/** Solve the n×n assignment problem for a row-major cost matrix (finite entries). */
export function solveAssignment(cost: ArrayLike<number>, n: number): Assignment {
  if (!Number.isInteger(n) || n < 0) throw new Error(`solveAssignment: bad size ${n}`);
  if (cost.length !== n * n)
    throw new Error(`solveAssignment: ${cost.length} costs for a ${n}×${n} problem`);
  for (let k = 0; k < cost.length; k++)
    if (!Number.isFinite(cost[k]))
      throw new Error(`solveAssignment: cost[${Math.floor(k / n)}, ${k % n}] is ${cost[k]}`);

  // 1-based internal indexing: column 0 is a virtual column holding the row being inserted.
  const u = new Float64Array(n + 1); // row potentials
  const v = new Float64Array(n + 1); // column potentials
  const p = new Int32Array(n + 1); // p[j] = row matched to column j (0 = free)
  const way = new Int32Array(n + 1); // predecessor column on the shortest path
  const minv = new Float64Array(n + 1);
  const used = new Uint8Array(n + 1);

  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0];
      const row = (i0 - 1) * n;
      const ui0 = u[i0];
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = cost[row + j - 1] - ui0 - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    // Augment along the path back to the virtual column.
    do {
      const j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 !== 0);
  }

  const rowToCol = new Int32Array(n);
  const colToRow = new Int32Array(n);
  let total = 0;
  for (let j = 1; j <= n; j++) {
    const i = p[j] - 1;
    rowToCol[i] = j - 1;
    colToRow[j - 1] = i;
    total += cost[i * n + j - 1];
  }
  return { rowToCol, colToRow, cost: total };
}
