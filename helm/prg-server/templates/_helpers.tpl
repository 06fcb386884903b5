{{- define "prg.fullname" -}}{{ .Release.Name }}-prg{{- end -}}
{{- define "prg.labels" -}}
app.kubernetes.io/name: prg-server
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "prg.env" -}}
- name: MODELS_DIR
  value: /models
- name: DATA_DIR
  value: /data/datasets
- name: REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- if .Values.apiKeysSecret }}
- name: PRG_API_KEYS
  valueFrom:
    secretKeyRef: { name: {{ .Values.apiKeysSecret }}, key: keys }
{{- end }}
{{- end -}}
{{- define "prg.volumes" -}}
- name: models
  persistentVolumeClaim: { claimName: {{ include "prg.fullname" . }}-models }
- name: data
  persistentVolumeClaim: { claimName: {{ include "prg.fullname" . }}-data }
{{- end -}}
{{- define "prg.mounts" -}}
- { name: models, mountPath: /models }
- { name: data, mountPath: /data }
{{- end -}}
