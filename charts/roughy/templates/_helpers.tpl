{{/*
Names. Every object is "<fullname>-<component>"; 63 characters at most (DNS labels).
*/}}
{{- define "roughy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "roughy.fullname" -}}
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

{{- define "roughy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels. The selector labels are immutable in a Deployment: name, instance and component only.
*/}}
{{- define "roughy.labels" -}}
helm.sh/chart: {{ include "roughy.chart" . }}
app.kubernetes.io/name: {{ include "roughy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: roughy
{{- end }}

{{- define "roughy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roughy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: include with (dict "ctx" $ "component" "api"). */}}
{{- define "roughy.componentLabels" -}}
{{ include "roughy.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "roughy.componentSelectorLabels" -}}
{{ include "roughy.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Images. The tag defaults to the chart's appVersion.
*/}}
{{- define "roughy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "roughy.encoderImage" -}}
{{- printf "%s:%s" .Values.encoder.image.repository (default .Chart.AppVersion .Values.encoder.image.tag) }}
{{- end }}

{{/*
ServiceAccount names: the given name, else "<fullname>-<component>" when the chart creates it,
else "default".
*/}}
{{- define "roughy.serviceAccountName" -}}
{{- $sa := index .ctx.Values .component "serviceAccount" }}
{{- if $sa.create }}
{{- default (printf "%s-%s" (include "roughy.fullname" .ctx) .component) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/*
The Secret the chart creates for whatever is given as a value rather than an existing Secret.
*/}}
{{- define "roughy.secretName" -}}
{{- printf "%s-secrets" (include "roughy.fullname" .) }}
{{- end }}

{{/* An env var from the chart's Secret or an existing one: (dict "ctx" $ "name" "ROUGHY_X" "from" .Values.x "key" "x"). */}}
{{- define "roughy.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      {{- if .from.existingSecret }}
      name: {{ .from.existingSecret }}
      key: {{ .existingKey }}
      {{- else }}
      name: {{ include "roughy.secretName" .ctx }}
      key: {{ .key }}
      {{- end }}
{{- end }}

{{- define "roughy.s3HasCredentials" -}}
{{- if or .Values.s3.existingSecret .Values.s3.accessKeyId }}true{{ end }}
{{- end }}

{{- define "roughy.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl }}
{{- else if and .Values.api.ingress.enabled .Values.api.ingress.hosts }}
{{- printf "https://%s" (index .Values.api.ingress.hosts 0).host }}
{{- else }}
{{- printf "http://%s-api.%s.svc:%v" (include "roughy.fullname" .) .Release.Namespace .Values.api.service.port }}
{{- end }}
{{- end }}

{{/*
Environment shared by the API and the operator (and the migration Job).
*/}}
{{- define "roughy.env" -}}
- name: ROUGHY_RUNTIME
  value: kubernetes
- name: ROUGHY_NAMESPACE
  value: {{ .Release.Namespace | quote }}
{{- if not (or .Values.database.existingSecret .Values.database.url) }}
{{- fail "set database.url or database.existingSecret (a PostgreSQL SQLAlchemy URL)" }}
{{- end }}
{{ include "roughy.secretEnv" (dict "ctx" . "name" "ROUGHY_DATABASE_URL" "from" .Values.database "existingKey" .Values.database.existingSecretKey "key" "database-url") }}
- name: ROUGHY_S3_BUCKET
  value: {{ required "s3.bucket is required" .Values.s3.bucket | quote }}
{{- with .Values.s3.endpointUrl }}
- name: ROUGHY_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.publicEndpointUrl }}
- name: ROUGHY_S3_PUBLIC_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: ROUGHY_S3_REGION
  value: {{ .Values.s3.region | quote }}
- name: ROUGHY_S3_PREFIX
  value: {{ .Values.s3.prefix | quote }}
- name: ROUGHY_S3_ADDRESSING_STYLE
  value: {{ .Values.s3.addressingStyle | quote }}
{{- if include "roughy.s3HasCredentials" . }}
{{ include "roughy.secretEnv" (dict "ctx" . "name" "ROUGHY_S3_ACCESS_KEY_ID" "from" .Values.s3 "existingKey" .Values.s3.existingSecretAccessKeyIdKey "key" "s3-access-key-id") }}
{{ include "roughy.secretEnv" (dict "ctx" . "name" "ROUGHY_S3_SECRET_ACCESS_KEY" "from" .Values.s3 "existingKey" .Values.s3.existingSecretSecretAccessKeyKey "key" "s3-secret-access-key") }}
{{- end }}
{{- if or .Values.adminKey.existingSecret .Values.adminKey.value }}
{{ include "roughy.secretEnv" (dict "ctx" . "name" "ROUGHY_ADMIN_KEY" "from" .Values.adminKey "existingKey" .Values.adminKey.existingSecretKey "key" "admin-key") }}
{{- end }}
- name: ROUGHY_PUBLIC_URL
  value: {{ include "roughy.publicUrl" . | quote }}
- name: ROUGHY_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: ROUGHY_RENDER_RETENTION
  value: {{ .Values.config.renderRetention | int | quote }}
- name: ROUGHY_CHUNK_PARALLELISM
  value: {{ .Values.encoder.chunks.parallelism | int | quote }}
- name: ROUGHY_CHUNK_SECONDS
  value: {{ .Values.encoder.chunks.seconds | quote }}
- name: ROUGHY_CHUNK_MIN_SECONDS
  value: {{ .Values.encoder.chunks.minSeconds | quote }}
{{- /* Nothing should be written outside /tmp (an emptyDir): the root filesystem is read-only. */}}
- name: ROUGHY_DATA_DIR
  value: /tmp/roughy
- name: HOME
  value: /tmp
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The encoder Jobs' settings: the JSON the operator reads (ROUGHY_JOBS_CONFIG), whose keys are the
fields of roughy.kube.jobs.JobSettings.

Most fields are copied from a values path; the table below says which ("a.b" keys nest: "cpu.cpu_request"
is {"cpu": {"cpu_request": ...}}). An empty string means "not set": the key is left out and JobSettings'
default applies. tests/chart reads this table from this file, walks the same paths through values.yaml
and validates the result with JobSettings, so a renamed value or field fails there.
*/}}
{{- define "roughy.jobSettings" -}}
{{- $paths := dict
  "image_pull_policy" "encoder.image.pullPolicy"
  "priority_class_name" "encoder.priorityClassName"
  "tier_priority_classes" "encoder.tierPriorityClassNames"
  "queue_seconds" "encoder.queueSeconds"
  "kueue_queue" "encoder.kueueQueueName"
  "backoff_limit" "encoder.backoffLimit"
  "chunk_parallelism" "encoder.chunks.parallelism"
  "ttl_seconds_after_finished" "encoder.ttlSecondsAfterFinished"
  "time_limit_base" "encoder.timeLimit.base"
  "time_limit_per_second" "encoder.timeLimit.perSecond"
  "deadline_factor" "encoder.deadlineFactor"
  "startup_seconds" "encoder.startupSeconds"
  "termination_grace_seconds" "encoder.terminationGracePeriodSeconds"
  "run_as_user" "encoder.runAsUser"
  "scratch_min_mib" "encoder.scratchMinMiB"
  "pod_annotations" "encoder.podAnnotations"
  "cpu.cpu_request" "encoder.resources.requests.cpu"
  "cpu.memory_request" "encoder.resources.requests.memory"
  "cpu.cpu_limit" "encoder.resources.limits.cpu"
  "cpu.memory_limit" "encoder.resources.limits.memory"
  "node_selector" "encoder.nodeSelector"
  "tolerations" "encoder.tolerations"
  "gpu_tiers" "encoder.gpu.tiers"
  "gpu.cpu_request" "encoder.gpu.resources.requests.cpu"
  "gpu.memory_request" "encoder.gpu.resources.requests.memory"
  "gpu.cpu_limit" "encoder.gpu.resources.limits.cpu"
  "gpu.memory_limit" "encoder.gpu.resources.limits.memory"
  "gpu_resource" "encoder.gpu.resourceName"
  "gpu_node_selector" "encoder.gpu.nodeSelector"
  "gpu_tolerations" "encoder.gpu.tolerations"
  "gpu_runtime_class" "encoder.gpu.runtimeClassName"
  "gpu_node_requirements" "encoder.gpu.nodeRequirements"
  "gpu_decode" "encoder.gpu.decode"
}}
{{- $settings := dict
  "image" (include "roughy.encoderImage" .)
  "instance" .Release.Name
  "service_account" (include "roughy.serviceAccountName" (dict "ctx" . "component" "encoder"))
  "image_pull_secrets" (list)
  "api_url" (printf "http://%s-api.%s.svc:%v" (include "roughy.fullname" .) .Release.Namespace .Values.api.service.port)
}}
{{- range .Values.imagePullSecrets }}
{{- $_ := set $settings "image_pull_secrets" (append $settings.image_pull_secrets .name) }}
{{- end }}
{{- range $key, $path := $paths }}
{{- $value := $.Values }}
{{- range splitList "." $path }}
{{- $value = index $value . }}
{{- end }}
{{- if or (not (kindIs "string" $value)) $value }}
{{- $target := $settings }}
{{- $parts := splitList "." $key }}
{{- range initial $parts }}
{{- if not (hasKey $target .) }}
{{- $_ := set $target . (dict) }}
{{- end }}
{{- $target = index $target . }}
{{- end }}
{{- $_ := set $target (last $parts) $value }}
{{- end }}
{{- end }}
{{- toPrettyJson $settings }}
{{- end }}
