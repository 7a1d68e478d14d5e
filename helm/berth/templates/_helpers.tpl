{{/* The chart name. */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* RELEASE-berth, or the release name when it already contains the chart name. */}}
{{- define "berth.fullname" -}}
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

{{/* Labels on every resource. */}}
{{- define "berth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: berth
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component (scheduler, agent). */}}
{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An image reference: repository:tag, the tag defaulting to the appVersion. */}}
{{- define "berth.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{- define "berth.scheduler.name" -}}{{ include "berth.fullname" . }}-scheduler{{- end }}
{{- define "berth.agent.name" -}}{{ include "berth.fullname" . }}-agent{{- end }}
{{/* The headless Service that gives each scheduler pod its DNS name. */}}
{{- define "berth.scheduler.peers" -}}{{ include "berth.scheduler.name" . }}-peers{{- end }}

{{- define "berth.databaseSecret" -}}
{{- default (printf "%s-database" (include "berth.fullname" .)) .Values.scheduler.database.existingSecret }}
{{- end }}

{{- define "berth.signingKeySecret" -}}
{{- default (printf "%s-signing-key" (include "berth.fullname" .)) .Values.scheduler.signingKey.existingSecret }}
{{- end }}

{{- define "berth.tlsSecret" -}}
{{- default (printf "%s-tls" (include "berth.fullname" .)) .Values.scheduler.tls.existingSecret }}
{{- end }}

{{- define "berth.joinTokenSecret" -}}
{{- default (printf "%s-join-token" (include "berth.fullname" .)) .Values.agent.joinToken.existingSecret }}
{{- end }}

{{/* The scheduler URL agents dial. */}}
{{- define "berth.agent.server" -}}
{{- if .Values.agent.server }}
{{- .Values.agent.server }}
{{- else }}
{{- printf "%s://%s.%s.svc:%v" (ternary "https" "http" .Values.scheduler.tls.enabled) (include "berth.scheduler.name" .) .Release.Namespace .Values.scheduler.service.grpcPort }}
{{- end }}
{{- end }}

{{/* The security context shared by both containers: no privilege escalation, a
read-only root filesystem, no capabilities, the runtime's default seccomp profile. */}}
{{- define "berth.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}
