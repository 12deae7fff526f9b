{{/* Names, labels and the checks every render runs. */}}

{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `<release>-<chart>`, or the release name when it already contains the chart name. */}}
{{- define "tollgate.fullname" -}}
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

{{- define "tollgate.operatorName" -}}
{{- printf "%s-operator" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tollgate.operatorLabels" -}}
{{ include "tollgate.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from `{root, image}`. global.imageRegistry, when set,
takes the place of the repository's registry: its first path component when
that names a host (contains `.` or `:`, or is `localhost`, as container
runtimes read it), or is put in front of a repository without one. With a
digest the runtime pulls by digest: `repo@digest`, or `repo:tag@digest` when
a tag is set explicitly (kept for readers; the empty default is the
appVersion, which need not be what the digest names).
*/}}
{{- define "tollgate.image" -}}
{{- $repo := .image.repository }}
{{- with (.root.Values.global | default dict).imageRegistry }}
{{- $parts := splitList "/" $repo }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- $repo = rest $parts | join "/" }}
{{- end }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}
{{- end }}
{{- if and .image.digest .image.tag }}
{{- printf "%s:%s@%s" $repo .image.tag .image.digest }}
{{- else if .image.digest }}
{{- printf "%s@%s" $repo .image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "tollgate.operatorImage" -}}
{{- include "tollgate.image" (dict "root" . "image" .Values.operator.image) }}
{{- end }}

{{/* The operator's --proxy-image. */}}
{{- define "tollgate.sidecarImage" -}}
{{- include "tollgate.image" (dict "root" . "image" .Values.sidecar.image) }}
{{- end }}

{{/* Webhook configuration names (also the operator's --*-webhook-config flags). */}}
{{- define "tollgate.webhookName" -}}
{{- include "tollgate.fullname" . }}
{{- end }}

{{/* The Secret cert-manager or the `helm` generator writes, mounted by the operator. */}}
{{- define "tollgate.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "tollgate.fullname" .) }}
{{- end }}

{{/*
Where the webhook certificate comes from: `cert-manager`, `operator`,
`secret` or `helm` (certManager.enabled wins over the default generator).
*/}}
{{- define "tollgate.tlsMode" -}}
{{- if .Values.certManager.enabled }}cert-manager{{ else }}{{ .Values.webhook.tls.generator }}{{ end }}
{{- end }}

{{/*
The Secret the operator reads through the API (--tls-secret): the one it
makes (`operator`; a different name from the `helm` generator's, which Helm
deletes on an upgrade away from it), or the user's (`secret`).
*/}}
{{- define "tollgate.operatorSecretName" -}}
{{- if eq (include "tollgate.tlsMode" .) "secret" }}
{{- .Values.webhook.tls.secretName }}
{{- else }}
{{- printf "%s-webhook-certs" (include "tollgate.fullname" .) }}
{{- end }}
{{- end }}

{{/* Whether the operator keeps the webhook configurations' caBundle. */}}
{{- define "tollgate.operatorPatchesCaBundle" -}}
{{- $mode := include "tollgate.tlsMode" . }}
{{- if or (eq $mode "operator") (and (eq $mode "secret") (not .Values.webhook.tls.caBundle)) }}true{{ end }}
{{- end }}

{{- define "tollgate.leaseName" -}}
{{- include "tollgate.operatorName" . }}
{{- end }}

{{/* The host of webhook.url, if set. */}}
{{- define "tollgate.webhookUrlHost" -}}
{{- with .Values.webhook.url }}
{{- $host := (urlParse .).host }}
{{- if hasPrefix "[" $host }}
{{- $host | trimPrefix "[" | regexReplaceAll "\\](:[0-9]+)?$" "" }}
{{- else }}
{{- regexReplaceAll ":[0-9]+$" $host "" }}
{{- end }}
{{- end }}
{{- end }}

{{/* DNS names of the webhook certificate, one a line. */}}
{{- define "tollgate.webhookDnsNames" -}}
{{- $svc := include "tollgate.operatorName" . }}
{{- $ns := .Release.Namespace }}
{{ $svc }}
{{ $svc }}.{{ $ns }}
{{ $svc }}.{{ $ns }}.svc
{{ $svc }}.{{ $ns }}.svc.cluster.local
{{- $host := include "tollgate.webhookUrlHost" . }}
{{- if and $host (not (regexMatch "^[0-9.]+$|:" $host)) }}
{{ $host }}
{{- end }}
{{- end }}

{{/* IP addresses of the webhook certificate (from webhook.url), one a line. */}}
{{- define "tollgate.webhookIPs" -}}
{{- $host := include "tollgate.webhookUrlHost" . }}
{{- if and $host (regexMatch "^[0-9.]+$|:" $host) }}
{{ $host }}
{{- end }}
{{- end }}

{{/* Combinations that cannot work: fail the render with a message saying why. */}}
{{- define "tollgate.validate" -}}
{{- $op := .Values.operator }}
{{- $tls := .Values.webhook.tls }}
{{- if and .Values.certManager.enabled (ne $tls.generator "operator") }}
{{- fail (printf "certManager.enabled and webhook.tls.generator=%s exclude each other: choose who makes the webhook certificate (with cert-manager, leave the generator at its default)" $tls.generator) }}
{{- end }}
{{- if and (eq (include "tollgate.tlsMode" .) "secret") (not $tls.secretName) }}
{{- fail "webhook.tls.generator=secret needs webhook.tls.secretName: the Secret (tls.crt, tls.key, ca.crt) in the release namespace the operator serves from" }}
{{- end }}
{{- if and $tls.secretName (ne (include "tollgate.tlsMode" .) "secret") }}
{{- fail (printf "webhook.tls.secretName is read only with webhook.tls.generator=secret (the certificate comes from %s)" (include "tollgate.tlsMode" .)) }}
{{- end }}
{{- if and $tls.caBundle (ne (include "tollgate.tlsMode" .) "secret") }}
{{- fail "webhook.tls.caBundle is read only with webhook.tls.generator=secret (otherwise the chart's generator or cert-manager provides the CA)" }}
{{- end }}
{{- if and $op.podDisruptionBudget.enabled (ge (int $op.podDisruptionBudget.minAvailable) (int $op.replicaCount)) }}
{{- fail (printf "operator.podDisruptionBudget.minAvailable (%d) must be below operator.replicaCount (%d), or no node could ever be drained; disable the budget for a single replica" (int $op.podDisruptionBudget.minAvailable) (int $op.replicaCount)) }}
{{- end }}
{{- if and .Values.grafanaDashboard.enabled (not .Values.monitoring.prometheusRule.enabled) }}
{{- fail "grafanaDashboard.enabled needs monitoring.prometheusRule.enabled: the dashboard's panels read its recording rules" }}
{{- end }}
{{- if eq (int .Values.sidecar.port) (int .Values.sidecar.adminPort) }}
{{- fail (printf "sidecar.port and sidecar.adminPort must differ (both %d)" (int .Values.sidecar.port)) }}
{{- end }}
{{- if and .Values.webhook.url (not (hasPrefix "https://" .Values.webhook.url)) }}
{{- fail "webhook.url must start with https:// (the API server only calls webhooks over TLS)" }}
{{- end }}
{{- $st := .Values.sharedStore }}
{{- if and $st.cluster $st.sentinelMasterName }}
{{- fail "sharedStore.cluster and sharedStore.sentinelMasterName exclude each other (a cluster fails over by itself)" }}
{{- end }}
{{- if and $st.nodes (not $st.cluster) (not $st.sentinelMasterName) }}
{{- fail "sharedStore.nodes needs sharedStore.cluster or sharedStore.sentinelMasterName" }}
{{- end }}
{{- if and $st.url (or $st.secret.caKey $st.secret.certKey $st.secret.keyKey) (not (hasPrefix "rediss://" $st.url)) }}
{{- fail "sharedStore.secret.caKey, certKey and keyKey are TLS files: sharedStore.url must start with rediss://" }}
{{- end }}
{{- if ne (empty $st.secret.certKey) (empty $st.secret.keyKey) }}
{{- fail "sharedStore.secret.certKey and keyKey go together (a client certificate and its key)" }}
{{- end }}
{{- if and $st.url (not $st.secret.name) (or $st.secret.caKey $st.secret.certKey $st.secret.keyKey) }}
{{- fail "sharedStore.secret.caKey, certKey and keyKey need sharedStore.secret.name" }}
{{- end }}
{{- end }}

{{/* The operator's --default-store: sharedStore as the JSON it reads
(`redis` as in spec.budgets.store.redis), or nothing while url is empty. */}}
{{- define "tollgate.defaultStore" -}}
{{- $st := .Values.sharedStore }}
{{- if $st.url }}
{{- $r := dict "url" $st.url }}
{{- with $st.nodes }}{{ $_ := set $r "nodes" . }}{{ end }}
{{- if $st.cluster }}{{ $_ := set $r "cluster" true }}{{ end }}
{{- with $st.sentinelMasterName }}{{ $_ := set $r "sentinel" (dict "masterName" .) }}{{ end }}
{{- with $st.username }}{{ $_ := set $r "username" . }}{{ end }}
{{- with $st.keyPrefix }}{{ $_ := set $r "keyPrefix" . }}{{ end }}
{{- with $st.timeout }}{{ $_ := set $r "timeout" . }}{{ end }}
{{- $sec := $st.secret }}
{{- if $sec.name }}
{{- with $sec.passwordKey }}{{ $_ := set $r "passwordSecretRef" (dict "name" $sec.name "key" .) }}{{ end }}
{{- $tls := dict }}
{{- with $sec.caKey }}{{ $_ := set $tls "caSecretRef" (dict "name" $sec.name "key" .) }}{{ end }}
{{- with $sec.certKey }}{{ $_ := set $tls "certSecretRef" (dict "name" $sec.name "key" .) }}{{ end }}
{{- with $sec.keyKey }}{{ $_ := set $tls "keySecretRef" (dict "name" $sec.name "key" .) }}{{ end }}
{{- if $tls }}{{ $_ := set $r "tls" $tls }}{{ end }}
{{- end }}
{{- toJson (dict "redis" $r "failMode" $st.failMode "budgets" $st.budgets "cache" $st.cache) }}
{{- end }}
{{- end }}

{{/* Whether the cluster serves a prometheus-operator kind. */}}
{{- define "tollgate.hasMonitoring" -}}
{{- if .Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) }}true{{ end }}
{{- end }}

{{/* A webhook's clientConfig: the Service, or webhook.url (development). */}}
{{- define "tollgate.webhookClient" -}}
{{- if .root.Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/" .root.Values.webhook.url) .path | quote }}
{{- else }}
service:
  name: {{ include "tollgate.operatorName" .root }}
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: 443
{{- end }}
{{- with .caBundle }}
caBundle: {{ . }}
{{- end }}
{{- end }}

{{/*
Namespaces the webhooks are not called for, one per line: the release's,
kube-system and webhook.excludedNamespaces. The webhook configurations and
the operator's --excluded-namespace flags share this list.
*/}}
{{- define "tollgate.excludedNamespaces" -}}
{{- concat (list .Release.Namespace "kube-system") .Values.webhook.excludedNamespaces | uniq | join "\n" }}
{{- end }}
