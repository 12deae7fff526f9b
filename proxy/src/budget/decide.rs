//! One admission attempt: the plan's checks against the store, and the
//! refusal it turns into (what `BudgetEngine::admit*` retry and count).

use super::*;

impl BudgetEngine {
    /// One admission attempt. With `may_retry`, a refusal that a smaller
    /// prompt count could turn is `Denied::Retry`, and counted nowhere.
    pub(super) async fn try_admit(
        &self,
        req: &AdmitRequest<'_>,
        may_retry: bool,
    ) -> Result<Admission, Denied> {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let now_ms = inner.clock.now_ms();

        let mut limit_scopes = Vec::with_capacity(cfg.limits.len());
        for l in &cfg.limits {
            limit_scopes.push(self.scope_hash(&l.scope, req).map_err(|header| {
                inner
                    .metrics
                    .refusals
                    .with_label_values(&[&l.name, l.scope.kind(), "missing_header"])
                    .inc();
                Refused::from(Refusal::MissingHeader {
                    limit: l.name.clone(),
                    header,
                })
            })?);
        }
        let mut rate_scopes = Vec::with_capacity(cfg.rate_limits.len());
        for r in &cfg.rate_limits {
            rate_scopes.push(self.scope_hash(&r.scope, req).map_err(|header| {
                inner
                    .metrics
                    .rate_refusals
                    .with_label_values(&[&r.name, r.scope.kind(), "missing_header"])
                    .inc();
                Refused::from(Refusal::MissingHeader {
                    limit: r.name.clone(),
                    header,
                })
            })?);
        }

        let max_out = req
            .max_output_tokens
            .unwrap_or(cfg.default_max_output_tokens);
        let tokens = req.prompt_tokens.saturating_add(max_out);
        let (usd, price) = if cfg.limits.iter().any(|l| l.usd.is_some()) {
            self.worst_price(req, max_out).map_err(Refused::from)?
        } else {
            (0, None)
        };

        let lease_epoch = window::lease_epoch(inner.lease_ms, now_ms);
        let id = admission::new_id();
        let mut plan = AdmitPlan {
            id: id.clone(),
            now_ms,
            lease_epoch,
            budgets: Vec::with_capacity(cfg.limits.len()),
            rates: Vec::new(),
        };
        let mut held = admission::Held {
            budgets: Vec::with_capacity(cfg.limits.len()),
            rates: Vec::new(),
            lease_epoch,
            price,
            reserved: true,
            id,
        };
        for (i, (l, scope)) in cfg.limits.iter().zip(limit_scopes).enumerate() {
            let span = inner
                .memo
                .window(i, now_ms, || Span::of(l.window, cfg.time_zone, now_ms));
            let op = BudgetOp {
                spent_key: inner.spent_key(l, &span, &scope),
                reserved_key: inner.reserved_key(l, &scope),
                span,
                limit_usd: l.usd,
                limit_tokens: l.tokens,
                usd: if l.usd.is_some() { usd } else { 0 },
                tokens: if l.tokens.is_some() { tokens } else { 0 },
                enforce: l.action == Action::Reject,
            };
            held.budgets.push(admission::HeldBudget {
                limit: i,
                scope,
                reserved_key: op.reserved_key.clone(),
                usd: op.usd,
                tokens: op.tokens,
            });
            plan.budgets.push(op);
        }
        for (rule, (r, scope)) in cfg.rate_limits.iter().zip(rate_scopes).enumerate() {
            if let Some(rpm) = r.requests_per_minute {
                plan.rates.push(RateOp {
                    key: key(
                        &inner.prefix,
                        &["rate", &r.name, r.scope.kind(), "req", &scope],
                    ),
                    rule,
                    requests: true,
                    limit: rpm,
                    cost: 1,
                });
            }
            if let Some(tpm) = r.tokens_per_minute {
                let key = key(
                    &inner.prefix,
                    &["rate", &r.name, r.scope.kind(), "tok", &scope],
                );
                held.rates.push(admission::HeldRate {
                    key: key.clone(),
                    limit: tpm,
                    estimated: tokens,
                });
                plan.rates.push(RateOp {
                    key,
                    rule,
                    requests: false,
                    limit: tpm,
                    cost: tokens,
                });
            }
        }
        if plan.budgets.is_empty() && plan.rates.is_empty() {
            return Ok(Admission::nothing(inner.clone()));
        }

        let result = match &inner.store {
            Store::Memory(s) => {
                let started = std::time::Instant::now();
                let r = s.admit(&plan);
                inner
                    .metrics
                    .store_duration
                    .series(&["memory", "admit"])
                    .observe(started.elapsed().as_secs_f64());
                Ok(r)
            }
            Store::Redis(s) => s.admit(&plan, inner.lease_ms).await,
        };
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                let Store::Redis(s) = &inner.store else {
                    unreachable!("the memory store does not fail")
                };
                // The answer was lost, not necessarily the call: Redis may
                // have reserved. The settlement (or, when refused, a
                // release queued now) undoes the reservation if the
                // admission was applied, and only then.
                held.reserved = false;
                if !s.fail_open() {
                    // Only then: an outage must not fill the queue with
                    // releases of calls that never left.
                    if e.maybe_applied() {
                        s.enqueue(admission::release_plan(inner, &held));
                    }
                    return Err(Denied::Final(Refused::from(Refusal::StoreUnavailable {
                        reason: e.metric_label().to_string(),
                    })));
                }
                return Ok(Admission::new(inner.clone(), held, None, Vec::new()));
            }
        };
        if !result.admitted {
            if may_retry && req.prompt_tokens > 0 && only_tokens_refused(&plan, &result) {
                return Err(Denied::Retry);
            }
            return Err(Denied::Final(Refused {
                refusal: self.refusal(&plan, &result),
                headers: headers::headers(&plan, &result, false),
            }));
        }
        let mut downgrade = None;
        for (l, s) in cfg.limits.iter().zip(&result.budgets) {
            if s.fits {
                continue;
            }
            match &l.action {
                Action::Downgrade { route } => {
                    downgrade.get_or_insert_with(|| route.clone());
                }
                Action::Warn => {
                    tracing::debug!(limit = %l.name, "budget exhausted; admitted by its warn action");
                }
                Action::Reject => continue,
            }
            inner
                .metrics
                .actions
                .with_label_values(&[&l.name, l.action.as_str()])
                .inc();
        }
        let headers = headers::headers(&plan, &result, true);
        Ok(Admission::new(inner.clone(), held, downgrade, headers))
    }

    /// The scope value's hash, or the header a `refuse` scope lacks.
    fn scope_hash(&self, scope: &Scope, req: &AdmitRequest<'_>) -> Result<String, String> {
        let value: &[u8] = match scope {
            // Hashed once per engine.
            Scope::Policy | Scope::Namespace | Scope::Workload => {
                return Ok(self
                    .inner
                    .memo
                    .fixed_scope(scope)
                    .unwrap_or_default()
                    .to_owned());
            }
            Scope::Model => req.requested_model.as_bytes(),
            Scope::Header { name, missing } => match req.headers.get(name.as_str()) {
                Some(v) if !v.as_bytes().is_empty() => v.as_bytes(),
                _ if *missing == tollgate_config::MissingHeader::Refuse => return Err(name.clone()),
                _ => MISSING.as_bytes(),
            },
        };
        Ok(scope_hash(value))
    }

    /// The worst-case cost among the request's models, and that model's price.
    fn worst_price(
        &self,
        req: &AdmitRequest<'_>,
        max_out: u64,
    ) -> Result<(u64, Option<Price>), Refusal> {
        let inner = &self.inner;
        let requested = [req.requested_model];
        let models = if req.models.is_empty() {
            &requested[..]
        } else {
            req.models
        };
        let mut worst: Option<(u64, Price)> = None;
        for model in models {
            let Some(p) = inner.prices.lookup(model) else {
                inner
                    .metrics
                    .unknown_price
                    .with_label_values(&["refused"])
                    .inc();
                return Err(Refusal::UnknownPrice {
                    model: (*model).to_string(),
                });
            };
            if p.label == pricing::DEFAULT_LABEL {
                inner
                    .metrics
                    .unknown_price
                    .with_label_values(&["default"])
                    .inc();
            }
            let cost = worst_case(&p.price, req.prompt_tokens, max_out);
            if worst.is_none_or(|(w, _)| cost > w) {
                worst = Some((cost, p.price));
            }
        }
        Ok(worst.map_or((0, None), |(c, p)| (c, Some(p))))
    }

    fn refusal(&self, plan: &AdmitPlan, result: &AdmitResult) -> Refusal {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        for ((op, s), l) in plan.budgets.iter().zip(&result.budgets).zip(&cfg.limits) {
            if op.enforce && !s.fits {
                inner
                    .metrics
                    .refusals
                    .with_label_values(&[&l.name, l.scope.kind(), "exceeded"])
                    .inc();
                return Refusal::BudgetExceeded {
                    limit: l.name.clone(),
                    retry_after: Duration::from_millis(
                        op.span.retry_after_ms(plan.now_ms, s.oldest_slot) as u64,
                    ),
                };
            }
        }
        for (op, s) in plan.rates.iter().zip(&result.rates) {
            if s.allowed {
                continue;
            }
            let r = &cfg.rate_limits[op.rule];
            let kind = if op.requests { "requests" } else { "tokens" };
            inner
                .metrics
                .rate_refusals
                .with_label_values(&[&r.name, r.scope.kind(), kind])
                .inc();
            let wait_us = s.tat_us - RATE_PERIOD_US - plan.now_ms as f64 * 1000.0;
            return Refusal::RateLimited {
                limit: r.name.clone(),
                retry_after: Duration::from_micros(wait_us.max(1000.0) as u64),
            };
        }
        Refusal::StoreUnavailable {
            reason: "inconsistent store reply".into(),
        }
    }
}

/// Why an admission attempt did not admit.
pub(super) enum Denied {
    Final(Refused),
    /// Refused only by checks that a smaller prompt count may pass.
    Retry,
}

impl From<Refused> for Denied {
    fn from(r: Refused) -> Denied {
        Denied::Final(r)
    }
}

/// True when every check that refused counts tokens: budgets (tokens, or
/// USD priced by tokens) and tokens-per-minute limits, not requests per
/// minute.
fn only_tokens_refused(plan: &AdmitPlan, result: &AdmitResult) -> bool {
    let rpm_refused = plan
        .rates
        .iter()
        .zip(&result.rates)
        .any(|(op, s)| op.requests && !s.allowed);
    !rpm_refused
}
