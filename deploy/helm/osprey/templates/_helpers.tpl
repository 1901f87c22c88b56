{{/* Names, labels and images shared by the templates; they mirror
     crates/osprey-operator/src/install (the objects of `osprey install`). */}}

{{- define "osprey.namespace" -}}
{{ .Values.namespace | default .Release.Namespace }}
{{- end }}

{{/* Labels of every object: (dict "name" NAME "component" COMPONENT) */}}
{{- define "osprey.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: osprey
{{- end }}

{{/* Pod selector of a workload: its name */}}
{{- define "osprey.selector" -}}
app.kubernetes.io/name: {{ . }}
app.kubernetes.io/part-of: osprey
{{- end }}

{{/* The Osprey image: (dict "root" $ "override" IMAGE) */}}
{{- define "osprey.image" -}}
{{- if .override -}}
{{ .override }}
{{- else -}}
{{ .root.Values.image.repository }}:{{ .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Pod security context: non-root as UID */}}
{{- define "osprey.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "osprey.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* A shared file's text without its `prometheus.enabled` blocks (whole lines from
     `# prometheus.enabled {` to `# prometheus.enabled }`) when Prometheus is disabled:
     (dict "text" TEXT "enabled" BOOL) */}}
{{- define "osprey.prometheusGated" -}}
{{- if .enabled -}}
{{ .text }}
{{- else -}}
{{ regexReplaceAll "(?ms)^# prometheus\\.enabled \\{$.*?^# prometheus\\.enabled \\}$\\n?" .text "" }}
{{- end -}}
{{- end }}
