{{/*
Recording rules (the dashboard's heavy queries) and alerts, as the `groups`
of a Prometheus rule file. tests/chart/ renders them, runs `promtool check
rules` and the unit tests in tests/chart/rules/, and checks every metric
name against what a running proxy and operator export.

Sidecar series carry their pod's `namespace` (PodMonitor). Operator series
keep the app namespace they name (ServiceMonitor honorLabels); only the
leader's controller gauges are current, hence `and on (pod) leader == 1`.
*/}}
{{- define "tollgate.ruleGroups" -}}
{{- $t := .Values.monitoring.prometheusRule.thresholds }}
{{- $runbook := .Values.monitoring.prometheusRule.runbookBaseUrl }}
{{- $job := include "tollgate.operatorName" . }}
groups:
  - name: tollgate.recording
    rules:
      - record: tollgate:requests:rate5m
        expr: sum by (namespace, route, model, provider, status_class) (rate(tollgate_requests_total[5m]))
      - record: tollgate:upstream_attempts:rate5m
        expr: sum by (namespace, target, outcome) (rate(tollgate_upstream_attempts_total[5m]))
      - record: tollgate:upstream_attempt_errors:ratio_rate5m
        expr: |-
          sum by (namespace, target) (tollgate:upstream_attempts:rate5m{outcome=~"server_error|timeout|connect_error|reset"})
            / sum by (namespace, target) (tollgate:upstream_attempts:rate5m{outcome!="skipped"})
      - record: tollgate:operation_duration_seconds:p99_rate5m
        expr: histogram_quantile(0.99, sum by (namespace, gen_ai_request_model, le) (rate(gen_ai_client_operation_duration_seconds_bucket[5m])))
      - record: tollgate:operation_duration_seconds:p50_rate5m
        expr: histogram_quantile(0.5, sum by (namespace, gen_ai_request_model, le) (rate(gen_ai_client_operation_duration_seconds_bucket[5m])))
      - record: tollgate:time_to_first_chunk_seconds:p90_rate5m
        expr: histogram_quantile(0.9, sum by (namespace, gen_ai_request_model, le) (rate(gen_ai_client_operation_time_to_first_chunk_seconds_bucket[5m])))
      - record: tollgate:time_to_first_chunk_seconds:p50_rate5m
        expr: histogram_quantile(0.5, sum by (namespace, gen_ai_request_model, le) (rate(gen_ai_client_operation_time_to_first_chunk_seconds_bucket[5m])))
      - record: tollgate:time_per_output_chunk_seconds:p90_rate5m
        expr: histogram_quantile(0.9, sum by (namespace, gen_ai_request_model, le) (rate(gen_ai_client_operation_time_per_output_chunk_seconds_bucket[5m])))
      - record: tollgate:time_per_output_chunk_seconds:p50_rate5m
        expr: histogram_quantile(0.5, sum by (namespace, gen_ai_request_model, le) (rate(gen_ai_client_operation_time_per_output_chunk_seconds_bucket[5m])))
      - record: tollgate:tokens:rate5m
        expr: sum by (namespace, provider, model, type) (rate(tollgate_tokens_total[5m]))
      - record: tollgate:budget_spend_usd:rate5m
        expr: sum by (namespace, model) (rate(tollgate_budget_spend_usd_total[5m]))
      - record: tollgate:budget_usage_ratio:max
        expr: max by (namespace, limit) (tollgate_budget_usage_ratio)
      - record: tollgate:cache_lookups:rate5m
        expr: sum by (namespace, result, store) (rate(tollgate_cache_lookups_total[5m]))
      # Requests answered from the cache, exact or semantic, over requests
      # looked up: each looked-up request has one exact lookup (memory or
      # Redis); the semantic lookup that follows an exact miss adds a hit
      # to the numerator, never a second request to the denominator.
      - record: tollgate:cache_hit:ratio_rate5m
        expr: |-
          sum by (namespace) (tollgate:cache_lookups:rate5m{result=~"hit|semantic-hit"})
            / sum by (namespace) (tollgate:cache_lookups:rate5m{store=~"memory|redis", result=~"hit|miss|error|timeout"})
      - record: tollgate:cache_saved_tokens:rate5m
        expr: sum by (namespace, type) (rate(tollgate_cache_saved_tokens_total[5m]))
      - record: tollgate:cache_saved_usd:rate5m
        expr: sum by (namespace) (rate(tollgate_cache_saved_usd_total[5m]))
      - record: tollgate:pii_detections:rate5m
        expr: sum by (namespace, entity_type, action, direction) (rate(tollgate_pii_detections_total[5m]))
      - record: tollgate:pii_blocked_requests:rate5m
        expr: sum by (namespace, filter) (rate(tollgate_pii_blocked_requests_total[5m]))
      - record: tollgate:fallbacks:rate5m
        expr: sum by (namespace, route, reason) (rate(tollgate_fallbacks_total[5m]))
      - record: tollgate:circuit_transitions:rate5m
        expr: sum by (namespace, target, to) (rate(tollgate_circuit_transitions_total[5m]))

  - name: tollgate.sidecar
    rules:
      - alert: TollgateBudgetNearlySpent
        expr: tollgate:budget_usage_ratio:max >= {{ $t.budgetWarningRatio }} < 1
        for: 1m
        labels:
          severity: warning
        annotations:
          summary: {{ `Budget {{ $labels.limit }} in {{ $labels.namespace }} is {{ $value | humanizePercentage }} spent` | quote }}
          description: {{ `The budget limit {{ $labels.limit }} has used {{ $value | humanizePercentage }} of its window. At 100% its requests are refused or downgraded, as the limit's action says.` | quote }}
          runbook_url: {{ $runbook }}#tollgatebudgetnearlyspent
      - alert: TollgateBudgetExhausted
        expr: tollgate:budget_usage_ratio:max >= 1
        for: 1m
        labels:
          severity: critical
        annotations:
          summary: {{ `Budget {{ $labels.limit }} in {{ $labels.namespace }} is exhausted` | quote }}
          description: {{ `The budget limit {{ $labels.limit }} is spent ({{ $value | humanizePercentage }}); its requests are refused or downgraded until the window resets or the limit is raised.` | quote }}
          runbook_url: {{ $runbook }}#tollgatebudgetexhausted
      - alert: TollgateUpstreamErrorRateHigh
        # Ignored below 3 attempts a minute: one failure in two is noise.
        expr: |-
          tollgate:upstream_attempt_errors:ratio_rate5m > {{ $t.upstreamErrorRatio }}
            and on (namespace, target) sum by (namespace, target) (tollgate:upstream_attempts:rate5m) > 0.05
        for: 10m
        labels:
          severity: critical
        annotations:
          summary: {{ `{{ $value | humanizePercentage }} of attempts to {{ $labels.target }} fail in {{ $labels.namespace }}` | quote }}
          description: {{ `Attempts to the target {{ $labels.target }} end in 5xx, timeouts, connection errors or resets. Retries and fallbacks hide some of this from apps; the rest reach them as errors.` | quote }}
          runbook_url: {{ $runbook }}#tollgateupstreamerrorratehigh
      - alert: TollgateLatencyP99High
        expr: tollgate:operation_duration_seconds:p99_rate5m > {{ $t.latencyP99Seconds }}
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: {{ `p99 duration for {{ $labels.gen_ai_request_model }} in {{ $labels.namespace }} is {{ $value | humanizeDuration }}` | quote }}
          description: {{ `The slowest 1% of requests for {{ $labels.gen_ai_request_model }} take longer than the threshold, request to last byte (streams included).` | quote }}
          runbook_url: {{ $runbook }}#tollgatelatencyp99high
      - alert: TollgateTimeToFirstTokenDegraded
        expr: tollgate:time_to_first_chunk_seconds:p90_rate5m > {{ $t.ttftP90Seconds }}
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: {{ `p90 time to first token for {{ $labels.gen_ai_request_model }} in {{ $labels.namespace }} is {{ $value | humanizeDuration }}` | quote }}
          description: {{ `Streamed answers for {{ $labels.gen_ai_request_model }} start late: users wait before seeing any text.` | quote }}
          runbook_url: {{ $runbook }}#tollgatetimetofirsttokendegraded
      - alert: TollgateCircuitBreakerOpen
        expr: max by (namespace, target) (tollgate_target_ejected) == 1
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: {{ `Target {{ $labels.target }} is ejected by its circuit breaker in {{ $labels.namespace }}` | quote }}
          description: {{ `The circuit breaker keeps {{ $labels.target }} out of selection; its route's other targets carry the traffic, or requests fail when there are none.` | quote }}
          runbook_url: {{ $runbook }}#tollgatecircuitbreakeropen
      - alert: TollgateSemanticCacheSuspended
        expr: min by (namespace, route) (tollgate_cache_semantic_serving) == 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: {{ `The semantic cache of route {{ $labels.route }} is suspended in {{ $labels.namespace }}` | quote }}
          description: {{ `Fresh answers disagree with the semantic hits {{ $labels.route }} served: it now sends would-be hits upstream (costlier, never wrong) until verified answers agree again.` | quote }}
          runbook_url: {{ $runbook }}#tollgatesemanticcachesuspended
      - alert: TollgateFallbacksSurging
        expr: |-
          sum by (namespace, route) (tollgate:fallbacks:rate5m)
            / sum by (namespace, route) (tollgate:requests:rate5m) > {{ $t.fallbackRatio }}
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: {{ `{{ $value | humanizePercentage }} of requests on route {{ $labels.route }} fall back in {{ $labels.namespace }}` | quote }}
          description: {{ `Requests on {{ $labels.route }} move to another target because the first failed or its context was too small; they cost more latency and maybe more money.` | quote }}
          runbook_url: {{ $runbook }}#tollgatefallbackssurging
      - alert: TollgatePiiBlocksSpiking
        expr: |-
          sum by (namespace) (tollgate:pii_blocked_requests:rate5m{filter="pii"})
            / sum by (namespace) (tollgate:requests:rate5m) > {{ $t.piiBlockRatio }}
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: {{ `{{ $value | humanizePercentage }} of requests in {{ $labels.namespace }} are blocked for PII` | quote }}
          description: {{ `The PII policy refuses a large share of requests: an app started sending personal data or secrets, or a recognizer is too broad.` | quote }}
          runbook_url: {{ $runbook }}#tollgatepiiblocksspiking
      - alert: TollgatePromptGuardBlocksSpiking
        expr: |-
          sum by (namespace) (tollgate:pii_blocked_requests:rate5m{filter="prompt_guard"})
            / sum by (namespace) (tollgate:requests:rate5m) > {{ $t.promptGuardBlockRatio }}
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: {{ `{{ $value | humanizePercentage }} of requests in {{ $labels.namespace }} are blocked by the prompt guard` | quote }}
          description: {{ `The prompt guard refuses a large share of requests: an injection attempt is under way, or a guard rule matches normal traffic.` | quote }}
          runbook_url: {{ $runbook }}#tollgatepromptguardblocksspiking
      - alert: TollgateConfigReloadFailing
        expr: min by (namespace, pod) (tollgate_config_last_reload_successful) == 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: {{ `Sidecar {{ $labels.namespace }}/{{ $labels.pod }} refuses its new config` | quote }}
          description: {{ `The sidecar keeps serving its last valid config; the new one failed validation, so policy changes do not apply to this pod.` | quote }}
          runbook_url: {{ $runbook }}#tollgateconfigreloadfailing
      - alert: TollgateBudgetStoreErrors
        expr: sum by (namespace, store) (rate(tollgate_budget_store_errors_total[5m])) > 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: {{ `Budget store {{ $labels.store }} calls fail in {{ $labels.namespace }}` | quote }}
          description: {{ `Admissions and settlements cannot reach the {{ $labels.store }} budget store; limits follow each budget's failure mode and settlements queue in memory.` | quote }}
          runbook_url: {{ $runbook }}#tollgatebudgetstoreerrors
      - alert: TollgateBudgetSettlementsLost
        expr: sum by (namespace, pod) (increase(tollgate_budget_lost_settlements_total[15m])) > 0
        labels:
          severity: warning
        annotations:
          summary: {{ `Sidecar {{ $labels.namespace }}/{{ $labels.pod }} dropped budget settlements` | quote }}
          description: {{ `The queue of settlements waiting for the budget store overflowed: the dropped spend is not counted against any limit.` | quote }}
          runbook_url: {{ $runbook }}#tollgatebudgetsettlementslost

  - name: tollgate.operator
    rules:
      - alert: TollgateSidecarMissing
        expr: |-
          max by (namespace, policy) (
            tollgate_operator_uninjected_pods and on (pod) (tollgate_operator_leader == 1)
          ) > 0
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: {{ `{{ $value }} pods selected by LlmPolicy {{ $labels.namespace }}/{{ $labels.policy }} run without the sidecar` | quote }}
          description: {{ `These pods call providers without Tollgate's keys, budgets and filters: they started while the webhook was unreachable (failurePolicy Ignore) or before their namespace was enabled. Restart them.` | quote }}
          runbook_url: {{ $runbook }}#tollgatesidecarmissing
      - alert: TollgateSidecarUnhealthy
        expr: |-
          max by (namespace, policy, reason) (
            tollgate_operator_unhealthy_sidecars and on (pod) (tollgate_operator_leader == 1)
          ) > 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: {{ `{{ $value }} pods of LlmPolicy {{ $labels.namespace }}/{{ $labels.policy }} have no running sidecar ({{ $labels.reason }})` | quote }}
          description: {{ `Their app containers cannot start (the sidecar starts first). The policy's SidecarsReady condition names the pods and what the kubelet says: an image that cannot be pulled, a crashing sidecar, or a volume (Secret key, ConfigMap) that cannot be mounted.` | quote }}
          runbook_url: {{ $runbook }}#tollgatesidecarunhealthy
      - alert: TollgateWorkloadPodsRefused
        expr: |-
          max by (namespace, policy) (
            tollgate_operator_refused_workloads and on (pod) (tollgate_operator_leader == 1)
          ) > 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: {{ `{{ $value }} workloads of LlmPolicy {{ $labels.namespace }}/{{ $labels.policy }} have their pods refused by Pod Security` | quote }}
          description: {{ `The namespace's Pod Security level refuses their pods, so they run nothing. The policy's PodsAdmitted condition names the workload and what the API server objects to; the injected sidecar meets restricted, so the app's own spec needs changing.` | quote }}
          runbook_url: {{ $runbook }}#tollgateworkloadpodsrefused
      - alert: TollgatePolicySecretMissing
        expr: |-
          max by (namespace, policy) (
            tollgate_operator_missing_secrets and on (pod) (tollgate_operator_leader == 1)
          ) > 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: {{ `LlmPolicy {{ $labels.namespace }}/{{ $labels.policy }} names {{ $value }} Secrets or keys that do not exist` | quote }}
          description: {{ `Pods injected now cannot mount them and their sidecar (and app) does not start. The policy's Ready condition (reason SecretMissing) names each Secret and key; create them in the policy's namespace and the policy turns Ready within seconds.` | quote }}
          runbook_url: {{ $runbook }}#tollgatepolicysecretmissing
      - alert: TollgatePolicyNotAccepted
        expr: |-
          max (
            tollgate_operator_policies{condition="Accepted", status="False"} and on (pod) (tollgate_operator_leader == 1)
          ) > 0
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: {{ `{{ $value }} LlmPolicies are not accepted` | quote }}
          description: {{ `Their specs do not render into a valid proxy config; their pods keep the last valid one. kubectl get llmp -A shows which, with the errors in status.` | quote }}
          runbook_url: {{ $runbook }}#tollgatepolicynotaccepted
      - alert: TollgateOperatorReconcileErrors
        expr: sum (rate(tollgate_operator_reconciles_total{result="error"}[5m])) > 0
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: Tollgate operator reconciles keep failing
          description: {{ `Reconciles fail on API errors ({{ $value | humanize }}/s) and retry with backoff: ConfigMaps or status may be stale.` | quote }}
          runbook_url: {{ $runbook }}#tollgateoperatorreconcileerrors
      - alert: TollgateWebhookErrors
        expr: sum by (webhook) (rate(tollgate_operator_admission_requests_total{result="error"}[5m])) > 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: {{ `The {{ $labels.webhook }} webhook answers reviews with errors` | quote }}
          description: {{ `Either a review cannot be read or a patch cannot be built (the pod is admitted without the sidecar), or the operator could not decide (its watch caches stale and a live read of the namespace or its policies failed) and answered 503, so the webhook's failurePolicy applied: Fail refuses the pod until a retry, Ignore admits it without the sidecar. The operator's warning lines say which.` | quote }}
          runbook_url: {{ $runbook }}#tollgatewebhookerrors
      - alert: TollgateWebhookLatencyHigh
        expr: |-
          histogram_quantile(0.99, sum by (webhook, le) (rate(tollgate_operator_admission_duration_seconds_bucket[5m])))
            > {{ $t.webhookLatencyP99Seconds }}
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: {{ `p99 of the {{ $labels.webhook }} webhook is {{ $value | humanizeDuration }}` | quote }}
          description: {{ `Admission reviews are slow; every pod creation (mutate) or policy write (validate) waits for them, and past the timeout the failurePolicy applies.` | quote }}
          runbook_url: {{ $runbook }}#tollgatewebhooklatencyhigh
      - alert: TollgateWebhookCertificateReloadFailing
        # Refused pairs are counted once per change of the files; a later
        # good pair (success) clears it.
        expr: |-
          sum by (pod) (increase(tollgate_operator_tls_reloads_total{result="failure"}[15m])) > 0
            unless on (pod) sum by (pod) (increase(tollgate_operator_tls_reloads_total{result="success"}[15m])) > 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: {{ `Operator {{ $labels.pod }} refused its renewed webhook certificate` | quote }}
          description: {{ `The certificate files changed but the new pair does not parse or the key does not match; the replica keeps serving its old certificate, and once that expires the API server cannot call the webhooks (the failurePolicy applies).` | quote }}
          runbook_url: {{ $runbook }}#tollgatewebhookcertificatereloadfailing
      - alert: TollgateOperatorNotLeading
        expr: max (tollgate_operator_leader) == 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: No Tollgate operator replica holds the leader Lease
          description: Replicas run and serve the webhooks, but none runs the controller, so policy changes are not applied. A replica that cannot update its Lease logs why.
          runbook_url: {{ $runbook }}#tollgateoperatornotleading
      - alert: TollgateOperatorDown
        expr: absent (up{job="{{ $job }}", namespace="{{ .Release.Namespace }}"} == 1)
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: No Tollgate operator replica is up
          description: Prometheus scrapes no operator replica. With failurePolicy Fail, pods in injected namespaces cannot be created; with Ignore, they start without the sidecar.
          runbook_url: {{ $runbook }}#tollgateoperatordown
{{- end }}
