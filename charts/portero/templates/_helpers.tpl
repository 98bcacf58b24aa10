{{/* The chart's name, "portero" unless nameOverride says otherwise. */}}
{{- define "portero.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release name when it already contains the chart's name
(release "portero" gives make deploy's portero-… names), else <release>-portero. Cluster-scoped
objects (ClusterRoles, the admission policy) carry it too, so two releases never share one.
*/}}
{{- define "portero.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "portero.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* <fullname>-<suffix>, within the 63 characters a Service name allows. */}}
{{- define "portero.objname" -}}
{{- printf "%s-%s" (include "portero.fullname" .root) .suffix | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "portero.serviceAccountName" -}}
{{- include "portero.objname" (dict "root" . "suffix" "controller-manager") }}
{{- end }}

{{- define "portero.managerRoleName" -}}
{{- include "portero.objname" (dict "root" . "suffix" "manager-role") }}
{{- end }}

{{/* Labels on every object the chart renders. */}}
{{- define "portero.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/part-of: portero
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "portero.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
What selects the operator's pods: config/default's label, and the release, so the metrics Service
of one release never reaches another's pods in the same namespace.
*/}}
{{- define "portero.operatorSelector" -}}
app.kubernetes.io/name: portero-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "portero.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
The image reference, by digest when one is given. The operator runs it and passes the same
reference to every portal it makes (--portal-image), as hack/deploy.sh does.
*/}}
{{- define "portero.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "portero.imageTag" .) }}
{{- end }}
{{- end }}

{{/* The operator's ServiceAccount as an RBAC subject. */}}
{{- define "portero.subject" -}}
- kind: ServiceAccount
  name: {{ include "portero.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}
