{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "adbsink-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name used as the prefix of every resource: <release>-<chart name>, or the release
name alone when it already contains the chart name.
*/}}
{{- define "adbsink-operator.fullname" -}}
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

{{/*
Value of the helm.sh/chart label.
*/}}
{{- define "adbsink-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "adbsink-operator.labels" -}}
helm.sh/chart: {{ include "adbsink-operator.chart" . }}
{{ include "adbsink-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: adbsink
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels selecting the operator pods (immutable once installed).
*/}}
{{- define "adbsink-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "adbsink-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Name of the service account the operator runs as.
*/}}
{{- define "adbsink-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "adbsink-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Operator image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "adbsink-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
Sink runtime image reference passed to the operator; the tag defaults to the chart's appVersion.
*/}}
{{- define "adbsink-operator.sinkImage" -}}
{{- printf "%s:%s" .Values.sinkImage.repository (.Values.sinkImage.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
"true" when leader election is on: more than one replica, or forced by leaderElection.enabled.
*/}}
{{- define "adbsink-operator.leaderElection" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.leaderElection.enabled -}}
true
{{- end -}}
{{- end }}

{{/*
RBAC rules for the namespaced resources the operator reconciles. Rendered into one ClusterRole
(all namespaces) or into a Role per entry of watchNamespaces.
*/}}
{{- define "adbsink-operator.namespacedRules" -}}
{{- /* Exactly the calls the operator makes; tests/tests/chart.rs and the real-API-server test
       operator/tests/cluster/helm.rs hold it to that. Server-side apply needs create to make
       an object and patch to change it. */}}
# Watched, patched (finalizer, password move), read again on a status conflict.
- apiGroups: ["adbsink.io"]
  resources: ["analyticdbsinks"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["adbsink.io"]
  resources: ["analyticdbsinks/status"]
  verbs: ["patch"]
# Children carry blockOwnerDeletion, which needs update on the owner's finalizers.
- apiGroups: ["adbsink.io"]
  resources: ["analyticdbsinks/finalizers"]
  verbs: ["update"]
# Referenced Secrets are read, and watched (metadata only) to roll pods on rotation; the
# credentials Secret is applied.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# CA certificates referenced by spec.source.tls.caConfigMapRef.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# Which sink pods still exist, so tasks of replaced pods drop out of the status.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch"]
{{- if .Values.sinkNetworkPolicies.enabled }}
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create", "patch"]
{{- else }}
# Without per-sink NetworkPolicies, the ones made while they were on are removed at start.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "delete"]
{{- end }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
