/**
 * What every workload of the chart must satisfy to start under Pod Security "restricted" and to
 * roll out without dropping requests. Each check returns the violations it found, as
 * "<label> <container>: <what>", so a failing test lists them all.
 */
import type { KubeObject, Rendered } from './kube-schema';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});
const list = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);

export const STANDARD_LABELS = [
  'app.kubernetes.io/name',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/version',
  'app.kubernetes.io/managed-by',
  'helm.sh/chart',
];

/** The pod spec of a workload (Deployment, StatefulSet, Job, Pod), else null. */
export function podSpecOf(o: KubeObject): Obj | null {
  if (o.kind === 'Pod') return obj(o.spec);
  if (['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind))
    return obj(obj(obj(o.spec).template).spec);
  return null;
}

export function containersOf(pod: Obj): { container: Obj; init: boolean }[] {
  return [
    ...list(pod.initContainers).map((container) => ({ container, init: true })),
    ...list(pod.containers).map((container) => ({ container, init: false })),
  ];
}

/** Security context, resources, image and probes of every container of every workload. */
export function workloadViolations({ label, object }: Rendered): string[] {
  const pod = podSpecOf(object);
  if (!pod) return [];
  const out: string[] = [];
  const podSec = obj(pod.securityContext);
  const longRunning = object.kind !== 'Pod' && object.kind !== 'Job';
  if (obj(podSec.seccompProfile).type !== 'RuntimeDefault')
    out.push(`${label}: pod seccompProfile is not RuntimeDefault`);
  if (pod.automountServiceAccountToken !== false)
    out.push(`${label}: pod mounts a service account token`);
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) out.push(`${label}: uses host namespaces`);
  for (const { container: c, init } of containersOf(pod)) {
    const at = `${label} ${String(c.name)}`;
    const sec = obj(c.securityContext);
    const image = String(c.image ?? '');
    const tag = image.includes('@') ? null : image.slice(image.lastIndexOf(':') + 1);
    if (!image.includes('@') && (!image.slice(image.lastIndexOf('/') + 1).includes(':') || !tag))
      out.push(`${at}: image ${image} has neither tag nor digest`);
    if (tag === 'latest') out.push(`${at}: image tag latest`);
    if (sec.runAsNonRoot !== true && podSec.runAsNonRoot !== true)
      out.push(`${at}: runAsNonRoot is not set`);
    if (sec.readOnlyRootFilesystem !== true) out.push(`${at}: root filesystem is writable`);
    if (sec.allowPrivilegeEscalation !== false) out.push(`${at}: privilege escalation allowed`);
    if (sec.privileged === true) out.push(`${at}: privileged`);
    const drop = list(obj(sec.capabilities).drop) as unknown[];
    if (!drop.includes('ALL')) out.push(`${at}: capabilities not dropped (ALL)`);
    if (list(obj(sec.capabilities).add).length) out.push(`${at}: adds capabilities`);
    const res = obj(c.resources);
    for (const key of ['cpu', 'memory'])
      if (obj(res.requests)[key] === undefined) out.push(`${at}: no ${key} request`);
    if (obj(res.limits).memory === undefined) out.push(`${at}: no memory limit`);
    if (longRunning && !init)
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
        if (!c[probe]) out.push(`${at}: no ${probe}`);
  }
  return out;
}

/** Standard labels on every object (and on pod templates). */
export function labelViolations({ label, object }: Rendered): string[] {
  const out: string[] = [];
  const check = (labels: Record<string, string> | undefined, where: string) => {
    for (const key of STANDARD_LABELS)
      if (!labels?.[key]) out.push(`${label}${where}: no label ${key}`);
  };
  check(object.metadata.labels, '');
  if (podSpecOf(object) && object.kind !== 'Pod')
    check(obj(obj(obj(object.spec).template).metadata).labels as Record<string, string>, ' pod');
  return out;
}

/** `selector` (a label map) selects `labels`. */
export function selects(selector: unknown, labels: unknown): boolean {
  const sel = obj(selector);
  const lab = obj(labels);
  return Object.keys(sel).length > 0 && Object.entries(sel).every(([k, v]) => lab[k] === v);
}
