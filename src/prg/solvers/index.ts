/**
 * ODE solvers for the PRG reverse process (paper §3.1, appendix C.2): Butcher tableaux, one
 * numeric stepping function (with adaptive dopri5 for inference) and the graph-unrolled form.
 */
export {
  DOPRI5,
  EULER,
  MIDPOINT,
  RK4,
  SOLVERS,
  solverByName,
  stagesPerStep,
  type ButcherTableau,
} from './tableau';
export {
  rkStep,
  solveOde,
  type SolveOptions,
  type SolveResult,
  type StepResult,
  type Vec,
  type VelocityFn,
} from './numeric';
export {
  batchZeros,
  integrateGraph,
  stepGraph,
  timeVector,
  type GraphVelocity,
  type IntegrateGraphOptions,
  type IntegrateGraphResult,
  type StepGraphOptions,
} from './graph';
