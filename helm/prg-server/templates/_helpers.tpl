{{/* Names: Helm's conventions (63 characters, nameOverride / fullnameOverride). */}}
{{- define "prg.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "prg.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "prg.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "prg.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "prg.labels" -}}
helm.sh/chart: {{ include "prg.chart" . }}
{{ include "prg.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: prg-server
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "prg.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "prg.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference; `suffix` is appended to the tag (the CUDA image). A digest wins over the tag. */}}
{{- define "prg.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag }}
{{- if .root.Values.image.digest }}
{{- printf "%s@%s" .root.Values.image.repository .root.Values.image.digest }}
{{- else }}
{{- printf "%s:%s%s" .root.Values.image.repository $tag (default "" .suffix) }}
{{- end }}
{{- end }}

{{- define "prg.redisEnabled" -}}
{{- if or .Values.redis.enabled .Values.redis.external.existingSecret }}true{{ end }}
{{- end }}

{{/* Settings that make a release unworkable fail the render with the reason. */}}
{{- define "prg.validate" -}}
{{- if and .Values.redis.enabled .Values.redis.external.existingSecret }}
{{- fail "redis.enabled (the bundled Redis) and redis.external.existingSecret (your Redis) exclude each other: set one" }}
{{- end }}
{{- if not (include "prg.redisEnabled" .) }}
{{- if .Values.worker.enabled }}
{{- fail "worker.enabled needs Redis (redis.enabled or redis.external.existingSecret): without it jobs run in the API process only" }}
{{- end }}
{{- if or (gt (int .Values.api.replicas) 1) .Values.api.autoscaling.enabled }}
{{- fail "more than one API pod needs Redis (redis.enabled or redis.external.existingSecret): the in-memory job queue is single-node" }}
{{- end }}
{{- end }}
{{- if eq (default .Chart.AppVersion .Values.image.tag) "latest" }}
{{- fail "image.tag: name a build, not `latest` (rollbacks and node caches depend on it)" }}
{{- end }}
{{- if and .Values.api.autoscaling.enabled (gt (int .Values.api.autoscaling.minReplicas) (int .Values.api.autoscaling.maxReplicas)) }}
{{- fail "api.autoscaling.minReplicas is above maxReplicas" }}
{{- end }}
{{- end }}

{{/* Environment shared by API and worker containers; `container` names the container whose CPU
request sets PRG_THREADS (the downward API rounds it up to whole cores, at least 1). */}}
{{- define "prg.env" -}}
{{- $v := .root.Values -}}
- name: MODELS_DIR
  value: /models
- name: DATA_DIR
  value: /data/datasets
- name: JOBS_DIR
  value: /data/jobs
- name: TMPDIR
  value: /tmp
- name: WARMUP
  value: {{ $v.models.warmup | quote }}
- name: MAX_LOADED_MODELS
  value: {{ $v.models.maxLoadedModels | quote }}
{{- with $v.models.default }}
- name: DEFAULT_MODEL
  value: {{ . | quote }}
{{- end }}
- name: PRG_THREADS
  valueFrom:
    resourceFieldRef:
      containerName: {{ .container }}
      resource: requests.cpu
      divisor: '1'
- name: PRG_DEVICE
  value: {{ ternary "cuda" "cpu" (default false .cuda) }}
{{- if $v.redis.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s-redis:6379" .root.Release.Name | quote }}
{{- else if $v.redis.external.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.redis.external.existingSecret }}
      key: {{ $v.redis.external.existingSecretKey }}
{{- end }}
{{- if $v.apiKeys.existingSecret }}
- name: PRG_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $v.apiKeys.existingSecret }}
      key: {{ $v.apiKeys.existingSecretKey }}
{{- end }}
{{- range $k, $val := $v.env }}
- name: {{ $k }}
  value: {{ $val | quote }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "prg.claimName" -}}
{{- $p := index .root.Values.persistence .name -}}
{{- default (printf "%s-%s" (include "prg.fullname" .root) .name) $p.existingClaim }}
{{- end }}

{{- define "prg.volumes" -}}
{{- range $name := list "models" "data" }}
{{- $p := index $.Values.persistence $name }}
- name: {{ $name }}
{{- if $p.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "prg.claimName" (dict "root" $ "name" $name) }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmp.sizeLimit }}
{{- if .Values.models.seed }}
- name: scripts
  configMap:
    name: {{ include "prg.fullname" . }}-scripts
{{- end }}
{{- end }}

{{- define "prg.mounts" -}}
- name: models
  mountPath: /models
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Init container copying the image's models to the volume (files/seed-models.mjs). */}}
{{- define "prg.seedContainer" -}}
{{- if .root.Values.models.seed }}
- name: seed-models
  image: {{ include "prg.image" (dict "root" .root "suffix" .suffix) | quote }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: [node, /scripts/seed-models.mjs, /app/models, /models]
  securityContext: {{- toYaml .root.Values.securityContext | nindent 4 }}
  resources: {{- toYaml .root.Values.models.seedResources | nindent 4 }}
  volumeMounts:
    - name: models
      mountPath: /models
    - name: scripts
      mountPath: /scripts
      readOnly: true
    - name: tmp
      mountPath: /tmp
{{- end }}
{{- end }}

{{- define "prg.podSecurity" -}}
serviceAccountName: {{ include "prg.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
