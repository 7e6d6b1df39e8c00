{{/* Names, labels, the image, and the pieces every pod shares. */}}

{{- define "tenantkit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Room is left for the longest suffix (-migrations). */}}
{{- define "tenantkit.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tenantkit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenantkit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tenantkit.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tenantkit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tenantkit
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "web") */}}
{{- define "tenantkit.componentLabels" -}}
{{ include "tenantkit.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tenantkit.componentSelector" -}}
{{ include "tenantkit.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tenantkit.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "tenantkit.secretName" -}}
{{- default (include "tenantkit.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "tenantkit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tenantkit.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The host users reach: ingress.host, else the host of config.publicUrl. */}}
{{- define "tenantkit.host" -}}
{{- default (urlParse .Values.config.publicUrl).hostname .Values.ingress.host }}
{{- end }}

{{- define "tenantkit.trustedProxyHops" -}}
{{- if kindIs "invalid" .Values.config.trustedProxyHops }}
{{- if .Values.ingress.enabled }}1{{ else }}0{{ end }}
{{- else }}
{{- .Values.config.trustedProxyHops }}
{{- end }}
{{- end }}

{{/*
The settings that are not secret, as TENANTKIT_* variables (YAML map). The server listens on
all addresses inside the pod, on the container port the probes and the Service use.
*/}}
{{- define "tenantkit.namedConfigEnv" -}}
{{- $c := .Values.config -}}
TENANTKIT_ENVIRONMENT: {{ $c.environment | quote }}
TENANTKIT_SERVER__BIND: "0.0.0.0:8000"
TENANTKIT_SERVER__PUBLIC_URL: {{ $c.publicUrl | quote }}
TENANTKIT_SERVER__SECURE_COOKIES: {{ $c.secureCookies | quote }}
TENANTKIT_SERVER__TRUSTED_PROXY_HOPS: {{ include "tenantkit.trustedProxyHops" . | quote }}
TENANTKIT_SERVER__SHUTDOWN_TIMEOUT_SECS: {{ $c.server.shutdownTimeoutSecs | quote }}
TENANTKIT_DATABASE__MAX_CONNECTIONS: {{ $c.database.maxConnections | quote }}
TENANTKIT_DATABASE__ACQUIRE_TIMEOUT_SECS: {{ $c.database.acquireTimeoutSecs | quote }}
TENANTKIT_DATABASE__STATEMENT_TIMEOUT_SECS: {{ $c.database.statementTimeoutSecs | quote }}
TENANTKIT_REDIS__KEY_PREFIX: {{ $c.redis.keyPrefix | quote }}
TENANTKIT_SMTP__FROM: {{ $c.smtp.from | quote }}
TENANTKIT_SMTP__TIMEOUT_SECS: {{ $c.smtp.timeoutSecs | quote }}
TENANTKIT_SMTP__POOL_SIZE: {{ $c.smtp.poolSize | quote }}
TENANTKIT_WORKER__CONCURRENCY: {{ $c.worker.concurrency | quote }}
TENANTKIT_WORKER__SHUTDOWN_TIMEOUT_SECS: {{ $c.worker.shutdownTimeoutSecs | quote }}
TENANTKIT_WORKER__RETRY_BASE_DELAY_SECS: {{ $c.worker.retryBaseDelaySecs | quote }}
TENANTKIT_WORKER__FETCH_BATCH: {{ $c.worker.fetchBatch | quote }}
{{- if lt (int $c.worker.orphanAfterSecs) (mul 2 (int $c.worker.heartbeatSecs)) }}
{{- fail "config.worker.orphanAfterSecs must be at least twice config.worker.heartbeatSecs" }}
{{- end }}
TENANTKIT_WORKER__HEARTBEAT_SECS: {{ $c.worker.heartbeatSecs | quote }}
TENANTKIT_WORKER__ORPHAN_AFTER_SECS: {{ $c.worker.orphanAfterSecs | quote }}
TENANTKIT_RATE_LIMIT__SIGNUPS_PER_HOUR: {{ $c.rateLimit.signupsPerHour | quote }}
TENANTKIT_RATE_LIMIT__LOGINS_PER_ACCOUNT: {{ $c.rateLimit.loginsPerAccount | quote }}
TENANTKIT_RATE_LIMIT__LOGINS_PER_ADDRESS: {{ $c.rateLimit.loginsPerAddress | quote }}
{{- with $c.admin.plans }}
TENANTKIT_ADMIN__PLANS: {{ join "," . | quote }}
{{- end }}
TENANTKIT_ADMIN__DELETED_TENANT_RETENTION_DAYS: {{ $c.admin.deletedTenantRetentionDays | quote }}
TENANTKIT_ADMIN__IMPERSONATION_MINUTES: {{ $c.admin.impersonationMinutes | quote }}
TENANTKIT_LOG__FORMAT: {{ $c.log.format | quote }}
TENANTKIT_LOG__FILTER: {{ $c.log.filter | quote }}
{{- with .Values.storage.s3 }}
{{- if .bucket }}
TENANTKIT_STORAGE__BACKEND: "s3"
TENANTKIT_STORAGE__S3__BUCKET: {{ .bucket | quote }}
TENANTKIT_STORAGE__S3__REGION: {{ .region | quote }}
TENANTKIT_STORAGE__S3__ENDPOINT: {{ .endpoint | quote }}
TENANTKIT_STORAGE__S3__FORCE_PATH_STYLE: {{ .forcePathStyle | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The named settings and config.extraEnv, which may not repeat a named one. */}}
{{- define "tenantkit.configEnv" -}}
{{- $named := include "tenantkit.namedConfigEnv" . | fromYaml }}
{{- include "tenantkit.namedConfigEnv" . }}
{{- range $name, $value := .Values.config.extraEnv }}
{{- if hasKey $named $name }}
{{- fail (printf "config.extraEnv.%s repeats a setting the chart names: set its config value instead" $name) }}
{{- end }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end }}

{{/*
The Secret's keys a component reads, as "key: ENV_VAR_FILE" (YAML map); each is mounted as a
file and named by a *_FILE variable, so no secret sits in the environment.
(dict "root" $ "component" "web|worker|migrations")
*/}}
{{- define "tenantkit.secretFiles" -}}
{{- $v := .root.Values -}}
secret-key: TENANTKIT_SECRET_KEY_FILE
database-url: TENANTKIT_DATABASE__URL_FILE
redis-url: TENANTKIT_REDIS__URL_FILE
{{- if eq .component "migrations" }}
migration-database-url: TENANTKIT_DATABASE__MIGRATION_URL_FILE
{{- else }}
smtp-url: TENANTKIT_SMTP__URL_FILE
{{- if $v.billing.stripe.enabled }}
stripe-secret-key: TENANTKIT_BILLING__STRIPE_SECRET_KEY_FILE
stripe-webhook-secrets: TENANTKIT_BILLING__WEBHOOK_SECRETS_FILE
{{- end }}
{{- if and $v.storage.s3.bucket (eq $v.storage.s3.credentials "secret") }}
s3-access-key-id: TENANTKIT_STORAGE__S3__ACCESS_KEY_ID_FILE
s3-secret-access-key: TENANTKIT_STORAGE__S3__SECRET_ACCESS_KEY_FILE
{{- end }}
{{- end }}
{{- end }}

{{- define "tenantkit.secretMountPath" -}}/var/run/secrets/tenantkit{{- end }}

{{/* env entries naming the mounted secret files: (dict "root" $ "component" ...) */}}
{{- define "tenantkit.secretFileEnv" -}}
{{- $path := include "tenantkit.secretMountPath" . }}
{{- range $key, $env := include "tenantkit.secretFiles" . | fromYaml }}
- name: {{ $env }}
  value: {{ printf "%s/%s" $path $key | quote }}
{{- end }}
{{- end }}

{{/* The secret volume of a component: (dict "root" $ "component" ... "secretName" ...) */}}
{{- define "tenantkit.secretVolume" -}}
- name: secrets
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
    items:
    {{- range $key, $env := include "tenantkit.secretFiles" . | fromYaml }}
      - key: {{ $key }}
        path: {{ $key }}
    {{- end }}
{{- end }}

{{- define "tenantkit.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: secrets
  mountPath: {{ include "tenantkit.secretMountPath" . }}
  readOnly: true
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tenantkit.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The restricted Pod Security Standard, fixed: only the ids are values. */}}
{{- define "tenantkit.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "tenantkit.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Scheduling keys shared by the Deployments and the Job: a values map. */}}
{{- define "tenantkit.scheduling" -}}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "tenantkit.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The data of a Secret the chart creates, holding only the keys that component mounts:
(dict "root" $ "component" ...). The owner's database URL goes only to the migration Job's.
*/}}
{{- define "tenantkit.secretData" -}}
{{- $s := .root.Values.secrets -}}
{{- $all := dict "secret-key" $s.secretKey "database-url" $s.databaseUrl "migration-database-url" $s.migrationDatabaseUrl "redis-url" $s.redisUrl "smtp-url" $s.smtpUrl "stripe-secret-key" $s.stripeSecretKey "stripe-webhook-secrets" $s.stripeWebhookSecrets "s3-access-key-id" $s.s3AccessKeyId "s3-secret-access-key" $s.s3SecretAccessKey -}}
{{- range $key, $env := include "tenantkit.secretFiles" . | fromYaml }}
{{ $key }}: {{ required (printf "secrets: the value for %s is missing (or set secrets.existingSecret)" $key) (get $all $key) | b64enc | quote }}
{{- end }}
{{- end }}
