{{- define "driftline.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "driftline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "driftline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "driftline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "driftline.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "driftline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "driftline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secret holding the Kafka SASL credentials: an existing one, or the chart's own */}}
{{- define "driftline.kafkaSecret" -}}
{{- default (printf "%s-kafka" (include "driftline.fullname" .)) .Values.kafka.sasl.existingSecret -}}
{{- end -}}

{{- define "driftline.kafkaSasl" -}}
{{- or .Values.kafka.sasl.existingSecret .Values.kafka.sasl.password -}}
{{- end -}}

{{- define "driftline.redisSecret" -}}
{{- default (printf "%s-redis" (include "driftline.fullname" .)) .Values.redis.existingSecret -}}
{{- end -}}

{{- define "driftline.redisAuth" -}}
{{- or .Values.redis.existingSecret .Values.redis.password -}}
{{- end -}}

{{/* librdkafka properties: the user's plus the mounted TLS files */}}
{{- define "driftline.kafkaProperties" -}}
{{- $props := deepCopy .Values.kafka.config -}}
{{- with .Values.kafka.tls -}}
{{- if .existingSecret -}}
{{- if .caKey }}{{ $_ := set $props "ssl.ca.location" (printf "/etc/driftline/kafka-tls/%s" .caKey) }}{{ end -}}
{{- if .certKey }}{{ $_ := set $props "ssl.certificate.location" (printf "/etc/driftline/kafka-tls/%s" .certKey) }}{{ end -}}
{{- if .keyKey }}{{ $_ := set $props "ssl.key.location" (printf "/etc/driftline/kafka-tls/%s" .keyKey) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- range $k := keys $props | sortAlpha }}
{{ $k }}={{ get $props $k }}
{{- end -}}
{{- end -}}
