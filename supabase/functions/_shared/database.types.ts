
export type Json = string | number | boolean | null | { [key: string]: Json | undefined } | Json[]

export type Database = {
  
  "billing": {
          Tables: {
            "ai_cache": {
                  Row: {
                    "cache_key": string,"completion_tokens": number,"created_at": string,"expires_at": string,"model": string,"organization_id": string,"prompt_tokens": number,"response": NonNullable<Json>
                  }
                  ComputedFields: never
                  Insert: {
                    "cache_key": string,"completion_tokens"?: number,"created_at"?: string,"expires_at": string,"model": string,"organization_id": string,"prompt_tokens"?: number,"response": NonNullable<Json>
                  }
                  Update: {
                    "cache_key"?: string,"completion_tokens"?: number,"created_at"?: string,"expires_at"?: string,"model"?: string,"organization_id"?: string,"prompt_tokens"?: number,"response"?: NonNullable<Json>
                  }
                  Relationships: [
                    
                  ]
                },"billing_email_confirmations": {
                  Row: {
                    "confirmed_at": string | null,"created_at": string,"email": string,"expires_at": string,"id": string,"organization_id": string,"token": string
                  }
                  ComputedFields: never
                  Insert: {
                    "confirmed_at"?: string | null,"created_at"?: string,"email": string,"expires_at"?: string,"id"?: string,"organization_id": string,"token"?: string
                  }
                  Update: {
                    "confirmed_at"?: string | null,"created_at"?: string,"email"?: string,"expires_at"?: string,"id"?: string,"organization_id"?: string,"token"?: string
                  }
                  Relationships: [
                    
                  ]
                },"discount_codes": {
                  Row: {
                    "active": boolean,"amount_paise": number | null,"code": string,"created_at": string,"deactivated_at": string | null,"deactivated_reason": string | null,"duration": Database["public"]['Enums']["discount_duration"],"first_purchase_only": boolean,"id": string,"max_per_organization": number | null,"max_redemptions": number | null,"percent_bps": number | null,"periods": number | null,"plans": (string)[] | null,"redemptions_ended_at": string | null,"updated_at": string,"valid_from": string | null,"valid_until": string | null,"discount_terms": Json | null
                  }
                  ComputedFields: "discount_terms"
                  Insert: {
                    "active"?: boolean,"amount_paise"?: number | null,"code": string,"created_at"?: string,"deactivated_at"?: string | null,"deactivated_reason"?: string | null,"duration"?: Database["public"]['Enums']["discount_duration"],"first_purchase_only"?: boolean,"id"?: string,"max_per_organization"?: number | null,"max_redemptions"?: number | null,"percent_bps"?: number | null,"periods"?: number | null,"plans"?: (string)[] | null,"redemptions_ended_at"?: string | null,"updated_at"?: string,"valid_from"?: string | null,"valid_until"?: string | null
                  }
                  Update: {
                    "active"?: boolean,"amount_paise"?: number | null,"code"?: string,"created_at"?: string,"deactivated_at"?: string | null,"deactivated_reason"?: string | null,"duration"?: Database["public"]['Enums']["discount_duration"],"first_purchase_only"?: boolean,"id"?: string,"max_per_organization"?: number | null,"max_redemptions"?: number | null,"percent_bps"?: number | null,"periods"?: number | null,"plans"?: (string)[] | null,"redemptions_ended_at"?: string | null,"updated_at"?: string,"valid_from"?: string | null,"valid_until"?: string | null
                  }
                  Relationships: [
                    
                  ]
                },"exchange_rates": {
                  Row: {
                    "currency": string,"effective_from": string,"id": string,"inr_per_unit": number,"reason": string,"recorded_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "currency": string,"effective_from": string,"id"?: string,"inr_per_unit": number,"reason": string,"recorded_at"?: string
                  }
                  Update: {
                    "currency"?: string,"effective_from"?: string,"id"?: string,"inr_per_unit"?: number,"reason"?: string,"recorded_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"invoice_counters": {
                  Row: {
                    "financial_year": number,"last_number": number,"series": Database["public"]['Enums']["document_series"],"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "financial_year": number,"last_number": number,"series": Database["public"]['Enums']["document_series"],"updated_at"?: string
                  }
                  Update: {
                    "financial_year"?: number,"last_number"?: number,"series"?: Database["public"]['Enums']["document_series"],"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"job_runs": {
                  Row: {
                    "as_of": string,"batch_limit": number | null,"error": string | null,"finished_at": string | null,"id": number,"job_name": string,"rows_affected": number | null,"started_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "as_of": string,"batch_limit"?: number | null,"error"?: string | null,"finished_at"?: string | null,"id"?: never,"job_name": string,"rows_affected"?: number | null,"started_at"?: string
                  }
                  Update: {
                    "as_of"?: string,"batch_limit"?: number | null,"error"?: string | null,"finished_at"?: string | null,"id"?: never,"job_name"?: string,"rows_affected"?: number | null,"started_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"jobs": {
                  Row: {
                    "active": boolean,"command": string | null,"doc": string,"name": string,"schedule": string,"worker": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "active"?: boolean,"command"?: string | null,"doc": string,"name": string,"schedule": string,"worker"?: string | null
                  }
                  Update: {
                    "active"?: boolean,"command"?: string | null,"doc"?: string,"name"?: string,"schedule"?: string,"worker"?: string | null
                  }
                  Relationships: [
                    
                  ]
                },"lut_registrations": {
                  Row: {
                    "arn": string,"filed_on": string | null,"financial_year": string,"id": string,"reason": string,"recorded_at": string,"superseded_at": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "arn": string,"filed_on"?: string | null,"financial_year": string,"id"?: string,"reason": string,"recorded_at"?: string,"superseded_at"?: string | null
                  }
                  Update: {
                    "arn"?: string,"filed_on"?: string | null,"financial_year"?: string,"id"?: string,"reason"?: string,"recorded_at"?: string,"superseded_at"?: string | null
                  }
                  Relationships: [
                    
                  ]
                },"operator_notes": {
                  Row: {
                    "created_at": string,"history_id": string,"organization_id": string,"reason": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"history_id": string,"organization_id": string,"reason": string
                  }
                  Update: {
                    "created_at"?: string,"history_id"?: string,"organization_id"?: string,"reason"?: string
                  }
                  Relationships: [
                    
                  ]
                },"order_checks": {
                  Row: {
                    "checked_at": string,"created_at": string,"order_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "checked_at": string,"created_at"?: string,"order_id": string
                  }
                  Update: {
                    "checked_at"?: string,"created_at"?: string,"order_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "order_checks_order_id_fkey"
      columns: ["order_id"]
isOneToOne: true
      referencedRelation: "overdue_orders"
      referencedColumns: ["order_id"]
    }
                  ]
                },"partitioned_tables": {
                  Row: {
                    "months_ahead": number,"partition_column": unknown,"retention_setting": unknown,"table_name": string
                  }
                  ComputedFields: never
                  Insert: {
                    "months_ahead"?: number,"partition_column": unknown,"retention_setting"?: unknown,"table_name": string
                  }
                  Update: {
                    "months_ahead"?: number,"partition_column"?: unknown,"retention_setting"?: unknown,"table_name"?: string
                  }
                  Relationships: [
                    
                  ]
                },"provider_actions": {
                  Row: {
                    "attempts": number,"completed_at": string | null,"created_at": string,"id": string,"idempotency_key": string,"kind": Database["billing"]['Enums']["provider_action_kind"],"last_error": string | null,"locked_until": string | null,"max_attempts": number,"next_attempt_at": string,"organization_id": string,"payload": NonNullable<Json>,"payment_event_id": string | null,"provider": Database["public"]['Enums']["payment_provider"],"reason": string | null,"requested_by": Database["public"]['Enums']["actor_kind"],"result": Json | null,"seq": number,"state": Database["billing"]['Enums']["provider_action_state"],"subscription_id": string | null,"target": NonNullable<Json>,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "attempts"?: number,"completed_at"?: string | null,"created_at"?: string,"id"?: string,"idempotency_key": string,"kind": Database["billing"]['Enums']["provider_action_kind"],"last_error"?: string | null,"locked_until"?: string | null,"max_attempts"?: number,"next_attempt_at"?: string,"organization_id": string,"payload"?: NonNullable<Json>,"payment_event_id"?: string | null,"provider": Database["public"]['Enums']["payment_provider"],"reason"?: string | null,"requested_by"?: Database["public"]['Enums']["actor_kind"],"result"?: Json | null,"seq"?: never,"state"?: Database["billing"]['Enums']["provider_action_state"],"subscription_id"?: string | null,"target"?: NonNullable<Json>,"updated_at"?: string
                  }
                  Update: {
                    "attempts"?: number,"completed_at"?: string | null,"created_at"?: string,"id"?: string,"idempotency_key"?: string,"kind"?: Database["billing"]['Enums']["provider_action_kind"],"last_error"?: string | null,"locked_until"?: string | null,"max_attempts"?: number,"next_attempt_at"?: string,"organization_id"?: string,"payload"?: NonNullable<Json>,"payment_event_id"?: string | null,"provider"?: Database["public"]['Enums']["payment_provider"],"reason"?: string | null,"requested_by"?: Database["public"]['Enums']["actor_kind"],"result"?: Json | null,"seq"?: never,"state"?: Database["billing"]['Enums']["provider_action_state"],"subscription_id"?: string | null,"target"?: NonNullable<Json>,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"provider_customers": {
                  Row: {
                    "created_at": string,"organization_id": string,"provider": Database["public"]['Enums']["payment_provider"],"provider_customer_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"organization_id": string,"provider": Database["public"]['Enums']["payment_provider"],"provider_customer_id": string
                  }
                  Update: {
                    "created_at"?: string,"organization_id"?: string,"provider"?: Database["public"]['Enums']["payment_provider"],"provider_customer_id"?: string
                  }
                  Relationships: [
                    
                  ]
                },"provider_settings": {
                  Row: {
                    "created_at": string,"name": string,"provider": Database["public"]['Enums']["payment_provider"],"value": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"name": string,"provider": Database["public"]['Enums']["payment_provider"],"value": string
                  }
                  Update: {
                    "created_at"?: string,"name"?: string,"provider"?: Database["public"]['Enums']["payment_provider"],"value"?: string
                  }
                  Relationships: [
                    
                  ]
                },"provider_subscription_states": {
                  Row: {
                    "cancel_at_period_end": boolean | null,"created_at": string,"event_id": string,"provider": Database["public"]['Enums']["payment_provider"],"provider_subscription_id": string,"status": string,"status_at": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "cancel_at_period_end"?: boolean | null,"created_at"?: string,"event_id": string,"provider": Database["public"]['Enums']["payment_provider"],"provider_subscription_id": string,"status": string,"status_at": string,"updated_at"?: string
                  }
                  Update: {
                    "cancel_at_period_end"?: boolean | null,"created_at"?: string,"event_id"?: string,"provider"?: Database["public"]['Enums']["payment_provider"],"provider_subscription_id"?: string,"status"?: string,"status_at"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"refund_checks": {
                  Row: {
                    "checked_at": string,"created_at": string,"payment_event_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "checked_at": string,"created_at"?: string,"payment_event_id": string
                  }
                  Update: {
                    "checked_at"?: string,"created_at"?: string,"payment_event_id"?: string
                  }
                  Relationships: [
                    
                  ]
                },"revenue_analytics": {
                  Row: {
                    "active_subscriptions": number,"arr": number,"as_of": string,"churned_customers": number,"churned_mrr": number,"complete": boolean,"computed_at": string,"contraction_mrr": number,"day": string,"expansion_mrr": number,"gross": number,"gst": number,"live_subscriptions_by_plan": NonNullable<Json>,"mrr": number,"mrr_by_plan": NonNullable<Json>,"net_revenue": number,"net_revenue_by_plan": NonNullable<Json>,"net_revenue_by_provider": NonNullable<Json>,"new_customers": number,"new_mrr": number,"opening_customers": number,"opening_mrr": number,"paying_customers": number,"reactivated_customers": number,"reactivation_mrr": number,"refunds": number
                  }
                  ComputedFields: never
                  Insert: {
                    "active_subscriptions": number,"arr": number,"as_of": string,"churned_customers": number,"churned_mrr": number,"complete": boolean,"computed_at"?: string,"contraction_mrr": number,"day": string,"expansion_mrr": number,"gross": number,"gst": number,"live_subscriptions_by_plan": NonNullable<Json>,"mrr": number,"mrr_by_plan": NonNullable<Json>,"net_revenue": number,"net_revenue_by_plan": NonNullable<Json>,"net_revenue_by_provider": NonNullable<Json>,"new_customers": number,"new_mrr": number,"opening_customers": number,"opening_mrr": number,"paying_customers": number,"reactivated_customers": number,"reactivation_mrr": number,"refunds": number
                  }
                  Update: {
                    "active_subscriptions"?: number,"arr"?: number,"as_of"?: string,"churned_customers"?: number,"churned_mrr"?: number,"complete"?: boolean,"computed_at"?: string,"contraction_mrr"?: number,"day"?: string,"expansion_mrr"?: number,"gross"?: number,"gst"?: number,"live_subscriptions_by_plan"?: NonNullable<Json>,"mrr"?: number,"mrr_by_plan"?: NonNullable<Json>,"net_revenue"?: number,"net_revenue_by_plan"?: NonNullable<Json>,"net_revenue_by_provider"?: NonNullable<Json>,"new_customers"?: number,"new_mrr"?: number,"opening_customers"?: number,"opening_mrr"?: number,"paying_customers"?: number,"reactivated_customers"?: number,"reactivation_mrr"?: number,"refunds"?: number
                  }
                  Relationships: [
                    
                  ]
                },"signature_failures": {
                  Row: {
                    "count": number,"hour": string,"last_at": string,"provider": Database["public"]['Enums']["payment_provider"]
                  }
                  ComputedFields: never
                  Insert: {
                    "count"?: number,"hour": string,"last_at"?: string,"provider": Database["public"]['Enums']["payment_provider"]
                  }
                  Update: {
                    "count"?: number,"hour"?: string,"last_at"?: string,"provider"?: Database["public"]['Enums']["payment_provider"]
                  }
                  Relationships: [
                    
                  ]
                },"test_clock": {
                  Row: {
                    "id": boolean,"simulated_at": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "id"?: boolean,"simulated_at": string,"updated_at"?: string
                  }
                  Update: {
                    "id"?: boolean,"simulated_at"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"webhook_event_keys": {
                  Row: {
                    "event_id": string,"provider": Database["public"]['Enums']["payment_provider"],"received_at": string,"webhook_event_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "event_id": string,"provider": Database["public"]['Enums']["payment_provider"],"received_at": string,"webhook_event_id": string
                  }
                  Update: {
                    "event_id"?: string,"provider"?: Database["public"]['Enums']["payment_provider"],"received_at"?: string,"webhook_event_id"?: string
                  }
                  Relationships: [
                    
                  ]
                },"webhook_events": {
                  Row: {
                    "attempts": number,"created_at": string,"event_id": string,"event_type": string,"id": string,"ignored_reason": string | null,"last_error": string | null,"payload": NonNullable<Json>,"payload_purged_at": string | null,"processed_at": string | null,"provider": Database["public"]['Enums']["payment_provider"],"received_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "attempts"?: number,"created_at"?: string,"event_id": string,"event_type": string,"id"?: string,"ignored_reason"?: string | null,"last_error"?: string | null,"payload": NonNullable<Json>,"payload_purged_at"?: string | null,"processed_at"?: string | null,"provider": Database["public"]['Enums']["payment_provider"],"received_at"?: string
                  }
                  Update: {
                    "attempts"?: number,"created_at"?: string,"event_id"?: string,"event_type"?: string,"id"?: string,"ignored_reason"?: string | null,"last_error"?: string | null,"payload"?: NonNullable<Json>,"payload_purged_at"?: string | null,"processed_at"?: string | null,"provider"?: Database["public"]['Enums']["payment_provider"],"received_at"?: string
                  }
                  Relationships: [
                    
                  ]
                }
          }
          Views: {
            "failed_deliveries": {
                  Row: {
                    "attempts": number,"event_id": string,"event_type": string,"kind": string | null,"last_error": string | null,"order_ref": string | null,"provider": Database["public"]['Enums']["payment_provider"],"provider_payment_id": string | null,"received_at": string,"webhook_event_id": string
                  }
                  ComputedFields: never
                  Insert: {
                           "attempts"?: number | null,"event_id"?: string | null,"event_type"?: string | null,"kind"?: never,"last_error"?: string | null,"order_ref"?: never,"provider"?: Database["public"]['Enums']["payment_provider"] | null,"provider_payment_id"?: never,"received_at"?: string | null,"webhook_event_id"?: string | null
                         }
                        Update: {
                           "attempts"?: number | null,"event_id"?: string | null,"event_type"?: string | null,"kind"?: never,"last_error"?: string | null,"order_ref"?: never,"provider"?: Database["public"]['Enums']["payment_provider"] | null,"provider_payment_id"?: never,"received_at"?: string | null,"webhook_event_id"?: string | null
                         }
                        Relationships: [
                    
                  ]
                },"job_problems": {
                  Row: {
                    "as_of": string,"error": string | null,"failed_runs": number | null,"finished_at": string | null,"job_name": string,"last_success_at": string | null,"problem": string | null,"run_id": number,"started_at": string
                  }
                  ComputedFields: never
                  Relationships: [
                    
                  ]
                },"notification_problems": {
                  Row: {
                    "attempts": number,"created_at": string,"failed_at": string | null,"kind": Database["public"]['Enums']["notification_kind"],"last_error": string | null,"locked_until": string | null,"notification_id": string,"organization_id": string,"problem": string | null
                  }
                  ComputedFields: never
                  Insert: {
                           "attempts"?: number | null,"created_at"?: string | null,"failed_at"?: string | null,"kind"?: Database["public"]['Enums']["notification_kind"] | null,"last_error"?: string | null,"locked_until"?: string | null,"notification_id"?: string | null,"organization_id"?: string | null,"problem"?: never
                         }
                        Update: {
                           "attempts"?: number | null,"created_at"?: string | null,"failed_at"?: string | null,"kind"?: Database["public"]['Enums']["notification_kind"] | null,"last_error"?: string | null,"locked_until"?: string | null,"notification_id"?: string | null,"organization_id"?: string | null,"problem"?: never
                         }
                        Relationships: [
                    
                  ]
                },"overdue_orders": {
                  Row: {
                    "amount_cents": number,"created_at": string,"currency": string,"expires_at": string | null,"order_id": string,"organization_id": string,"past_expiry": boolean | null,"pending_for": string | null,"provider": Database["public"]['Enums']["payment_provider"],"provider_order_id": string | null,"receipt": string,"status": Database["public"]['Enums']["order_status"]
                  }
                  ComputedFields: never
                  Relationships: [
                    
                  ]
                },"provider_action_problems": {
                  Row: {
                    "attempts": number,"created_at": string,"kind": Database["billing"]['Enums']["provider_action_kind"],"last_error": string | null,"max_attempts": number,"next_attempt_at": string,"organization_id": string,"problem": string | null,"provider": Database["public"]['Enums']["payment_provider"],"provider_action_id": string,"state": Database["billing"]['Enums']["provider_action_state"],"target": NonNullable<Json>
                  }
                  ComputedFields: never
                  Insert: {
                           "attempts"?: number | null,"created_at"?: string | null,"kind"?: Database["billing"]['Enums']["provider_action_kind"] | null,"last_error"?: string | null,"max_attempts"?: number | null,"next_attempt_at"?: string | null,"organization_id"?: string | null,"problem"?: never,"provider"?: Database["public"]['Enums']["payment_provider"] | null,"provider_action_id"?: string | null,"state"?: Database["billing"]['Enums']["provider_action_state"] | null,"target"?: Json | null
                         }
                        Update: {
                           "attempts"?: number | null,"created_at"?: string | null,"kind"?: Database["billing"]['Enums']["provider_action_kind"] | null,"last_error"?: string | null,"max_attempts"?: number | null,"next_attempt_at"?: string | null,"organization_id"?: string | null,"problem"?: never,"provider"?: Database["public"]['Enums']["payment_provider"] | null,"provider_action_id"?: string | null,"state"?: Database["billing"]['Enums']["provider_action_state"] | null,"target"?: Json | null
                         }
                        Relationships: [
                    
                  ]
                },"quota_pressure": {
                  Row: {
                    "limit_amount": number | null,"metric": string,"organization_id": string,"organization_name": string,"percent": number | null,"plan_code": string | null,"resets_at": string | null,"used": number,"window_start": string,"window_unit": Database["public"]['Enums']["usage_window"]
                  }
                  ComputedFields: never
                  Relationships: [
                    
                  ]
                },"revenue_current": {
                  Row: {
                    "active_subscriptions": number,"arr": number,"as_of": string,"churned_customers": number,"churned_mrr": number,"complete": boolean,"computed_at": string,"contraction_mrr": number,"day": string,"expansion_mrr": number,"gross": number,"gst": number,"live_subscriptions_by_plan": NonNullable<Json>,"mrr": number,"mrr_by_plan": NonNullable<Json>,"net_revenue": number,"net_revenue_by_plan": NonNullable<Json>,"net_revenue_by_provider": NonNullable<Json>,"new_customers": number,"new_mrr": number,"opening_customers": number,"opening_mrr": number,"paying_customers": number,"reactivated_customers": number,"reactivation_mrr": number,"refunds": number
                  }
                  ComputedFields: never
                  Relationships: [
                    
                  ]
                },"revenue_monthly": {
                  Row: {
                    "arpa": number | null,"churned_customers": number | null,"churned_mrr": number | null,"closing_arr": number | null,"closing_customers": number | null,"closing_mrr": number | null,"complete": boolean | null,"contraction_mrr": number | null,"days": number | null,"expansion_mrr": number | null,"gross": number | null,"gross_revenue_churn_rate": number | null,"gst": number | null,"logo_churn_rate": number | null,"month": string | null,"net_revenue": number | null,"net_revenue_churn_rate": number | null,"new_customers": number | null,"new_mrr": number | null,"opening_customers": number | null,"opening_mrr": number | null,"reactivated_customers": number | null,"reactivation_mrr": number | null,"refunds": number | null
                  }
                  ComputedFields: never
                  Relationships: [
                    
                  ]
                },"signature_failures_hourly": {
                  Row: {
                    "count": number,"hour": string,"last_at": string,"provider": Database["public"]['Enums']["payment_provider"]
                  }
                  ComputedFields: never
                  Insert: {
                           "count"?: number | null,"hour"?: string | null,"last_at"?: string | null,"provider"?: Database["public"]['Enums']["payment_provider"] | null
                         }
                        Update: {
                           "count"?: number | null,"hour"?: string | null,"last_at"?: string | null,"provider"?: Database["public"]['Enums']["payment_provider"] | null
                         }
                        Relationships: [
                    
                  ]
                },"subscription_states": {
                  Row: {
                    "action": string,"created_at": string,"effective_at": string,"id": string,"mrr": number | null,"organization_id": string,"plan_code": string | null,"plan_id": string | null,"status": Database["public"]['Enums']["subscription_status"] | null,"subscription_id": string | null
                  }
                  ComputedFields: never
                  Relationships: [
                    
                  ]
                },"unapplied_payments": {
                  Row: {
                    "amount_cents": number | null,"currency": string | null,"detail": string | null,"occurred_at": string | null,"order_id": string | null,"organization_id": string | null,"problem": string | null,"provider": Database["public"]['Enums']["payment_provider"] | null,"provider_payment_id": string | null,"refund_action_state": string | null
                  }
                  ComputedFields: never
                  Relationships: [
                    
                  ]
                }
          }
          Functions: {
            "add_credit_grant":
{ Args: { "p_actor_kind"?: Database["public"]['Enums']["actor_kind"],"p_amount": number,"p_dedupe_key"?: string,"p_effective_from"?: string,"p_expires_at"?: string,"p_order_id"?: string,"p_organization_id": string,"p_payment_event_id"?: string,"p_period_start"?: string,"p_reason"?: string,"p_source": Database["public"]['Enums']["credit_source"],"p_subscription_id"?: string }; Returns: Database["public"]['Tables']["credit_grants"]['Row']
                          SetofOptions: {
        from: "*"
        to: "credit_grants"
        isOneToOne: true
        isSetofReturn: false
      } },
"add_organization_member":
{ Args: { "p_organization_id": string,"p_role"?: Database["public"]['Enums']["member_role"],"p_user_id": string }; Returns: undefined
                           },
"adjust_charge":
{ Args: { "p_credits": number,"p_function": string,"p_organization_id": string,"p_request_id": string }; Returns: Record<string, unknown>
                           },
"ai_affordable_tokens":
{ Args: { "p_paise": number,"p_price": Omit<Database["public"]['Tables']["ai_model_prices"]['Row'], Database["public"]['Tables']["ai_model_prices"]['ComputedFields']>,"p_prompt_tokens": number }; Returns: number
                           },
"ai_batch_due_at":
{ Args: { "p_at": string }; Returns: string
                           },
"ai_batch_lines":
{ Args: { "p_batch_id": string }; Returns: {
              "body": Json,"custom_id": string
            }[]
                           },
"ai_batch_price":
{ Args: { "p_price": Omit<Database["public"]['Tables']["ai_model_prices"]['Row'], Database["public"]['Tables']["ai_model_prices"]['ComputedFields']> }; Returns: Database["public"]['Tables']["ai_model_prices"]['Row']
                          SetofOptions: {
        from: "ai_model_prices"
        to: "ai_model_prices"
        isOneToOne: true
        isSetofReturn: false
      } },
"ai_batch_prompt_tokens":
{ Args: { "p_body": Json }; Returns: number
                           },
"ai_batch_request_problem":
{ Args: { "p_body": Json,"p_models": Json }; Returns: string
                           },
"ai_batch_run_failed":
{ Args: { "p_batch_id": string,"p_groq_status": string,"p_run": number }; Returns: Database["public"]['Enums']["ai_batch_state"]
                           },
"ai_batch_wait":
{ Args: { "p_batch_id": string,"p_error"?: string,"p_groq_status"?: string }; Returns: undefined
                           },
"ai_cached_answer":
{ Args: { "p_cache_key": string,"p_model": string,"p_now": string,"p_organization_id": string,"p_reservation": Database["billing"]['CompositeTypes']["ai_reservation"],"p_stream": boolean,"p_user_id": string }; Returns: Database["billing"]['CompositeTypes']["ai_reservation"]
                          SetofOptions: {
        from: "*"
        to: "ai_reservation"
        isOneToOne: true
        isSetofReturn: false
      } },
"ai_charge_cost":
{ Args: { "p_paise": number,"p_request": Omit<Database["public"]['Tables']["ai_requests"]['Row'], Database["public"]['Tables']["ai_requests"]['ComputedFields']> }; Returns: number
                           },
"ai_check_reserve_arguments":
{ Args: { "p_cache_key": string,"p_max_tokens": number,"p_model": string,"p_organization_id": string,"p_prompt_tokens": number,"p_user_id": string }; Returns: undefined
                           },
"ai_cost_cap":
{ Args: { "p_event": string,"p_features": Json,"p_month_end": string,"p_now": string,"p_organization_id": string,"p_price": Omit<Database["public"]['Tables']["ai_model_prices"]['Row'], Database["public"]['Tables']["ai_model_prices"]['ComputedFields']>,"p_prompt_tokens": number,"p_requested": number,"p_reservation": Database["billing"]['CompositeTypes']["ai_reservation"],"p_spend_units": (Database["public"]['Enums']["usage_window"])[],"p_timezone": string }; Returns: Database["billing"]['CompositeTypes']["ai_reservation"]
                          SetofOptions: {
        from: "*"
        to: "ai_reservation"
        isOneToOne: true
        isSetofReturn: false
      } },
"ai_cost_paise":
{ Args: { "p_cached_tokens"?: number,"p_completion_tokens": number,"p_price": Omit<Database["public"]['Tables']["ai_model_prices"]['Row'], Database["public"]['Tables']["ai_model_prices"]['ComputedFields']>,"p_prompt_tokens": number }; Returns: number
                           },
"ai_count":
{ Args: { "p_amount": number,"p_features": Json,"p_is_reservation"?: boolean,"p_metric": string,"p_now": string,"p_organization_id": string,"p_request_id": string,"p_timezone": string,"p_units": (Database["public"]['Enums']["usage_window"])[],"p_user_id": string }; Returns: Record<string, unknown>
                           },
"ai_denied":
{ Args: { "p_denial": string,"p_limit": number,"p_month_end": string,"p_now": string,"p_remaining": number,"p_reservation": Database["billing"]['CompositeTypes']["ai_reservation"],"p_resets_at": string }; Returns: Database["billing"]['CompositeTypes']["ai_reservation"]
                          SetofOptions: {
        from: "*"
        to: "ai_reservation"
        isOneToOne: true
        isSetofReturn: false
      } },
"ai_expire":
{ Args: { "p_request_id": string }; Returns: boolean
                           },
"ai_model_price":
{ Args: { "p_at": string,"p_model": string }; Returns: Database["public"]['Tables']["ai_model_prices"]['Row']
                          SetofOptions: {
        from: "*"
        to: "ai_model_prices"
        isOneToOne: true
        isSetofReturn: false
      } },
"ai_plan_windows":
{ Args: { "p_features": Json,"p_user_id": string }; Returns: Record<string, unknown>
                           },
"ai_purge_cache":
{ Args: { "p_limit"?: number }; Returns: number
                           },
"ai_rate_metric":
{ Args: { "p_user_id": string }; Returns: string
                           },
"ai_release":
{ Args: { "p_error_code"?: string,"p_latency_ms"?: number,"p_request_id": string,"p_status"?: Database["public"]['Enums']["ai_request_status"] }; Returns: boolean
                           },
"ai_release_stale_reservations":
{ Args: { "p_limit"?: number }; Returns: number
                           },
"ai_reserve":
{ Args: { "p_batch"?: boolean,"p_cache_key"?: string,"p_max_tokens": number,"p_model": string,"p_organization_id": string,"p_prompt_tokens": number,"p_stream"?: boolean,"p_user_id": string }; Returns: Database["billing"]['CompositeTypes']["ai_reservation"]
                          SetofOptions: {
        from: "*"
        to: "ai_reservation"
        isOneToOne: true
        isSetofReturn: false
      } },
"ai_reserve_tokens":
{ Args: { "p_all_or_none"?: boolean,"p_features": Json,"p_month_end": string,"p_now": string,"p_organization_id": string,"p_prompt_tokens": number,"p_requested": number,"p_reservation": Database["billing"]['CompositeTypes']["ai_reservation"],"p_timezone": string,"p_units": (Database["public"]['Enums']["usage_window"])[],"p_user_id": string }; Returns: Database["billing"]['CompositeTypes']["ai_reservation"]
                          SetofOptions: {
        from: "*"
        to: "ai_reservation"
        isOneToOne: true
        isSetofReturn: false
      } },
"ai_seconds_until":
{ Args: { "p_at": string,"p_now": string }; Returns: number
                           },
"ai_settle":
{ Args: { "p_cached_tokens"?: number,"p_completion_tokens": number,"p_latency_ms"?: number,"p_prompt_tokens": number,"p_request_id": string,"p_response"?: Json,"p_status"?: Database["public"]['Enums']["ai_request_status"] }; Returns: Record<string, unknown>
                           },
"ai_settle_metric":
{ Args: { "p_actual": number,"p_metric": string,"p_organization_id": string,"p_request_id": string,"p_reserved": number }; Returns: Record<string, unknown>
                           },
"ai_take_rate":
{ Args: { "p_month_end": string,"p_now": string,"p_organization_id": string,"p_rate_features": Json,"p_rate_metric": string,"p_rate_units": (Database["public"]['Enums']["usage_window"])[],"p_reservation": Database["billing"]['CompositeTypes']["ai_reservation"],"p_timezone": string }; Returns: Database["billing"]['CompositeTypes']["ai_reservation"]
                          SetofOptions: {
        from: "*"
        to: "ai_reservation"
        isOneToOne: true
        isSetofReturn: false
      } },
"amount_in_words":
{ Args: { "p_paise": number }; Returns: string
                           },
"apply_captured_payment":
{ Args: { "p_event": Json,"p_event_at": string,"p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']> }; Returns: Json
                           },
"apply_dispute":
{ Args: { "p_event": Json,"p_event_at": string }; Returns: Json
                           },
"apply_due_downgrades":
{ Args: { "p_job": Json,"p_limit": number,"p_now": string }; Returns: number
                           },
"apply_order_event":
{ Args: { "p_event": Json,"p_event_at": string }; Returns: Json
                           },
"apply_payment_event":
{ Args: { "p_event": Json }; Returns: Json
                           },
"apply_payment_failure":
{ Args: { "p_event": Json,"p_event_at": string,"p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']> }; Returns: Json
                           },
"apply_refund":
{ Args: { "p_event": Json,"p_event_at": string }; Returns: Json
                           },
"apply_refund_failed":
{ Args: { "p_event": Json,"p_event_at": string }; Returns: Json
                           },
"apply_usage_delta":
{ Args: { "p_at": string,"p_delta": number,"p_features": Json,"p_metric": string,"p_organization_id": string,"p_past_limit"?: boolean,"p_settled"?: number,"p_timezone": string,"p_units": (Database["public"]['Enums']["usage_window"])[] }; Returns: Record<string, unknown>
                           },
"attach_provider_checkout":
{ Args: { "p_order_id": string,"p_provider_customer_id"?: string,"p_provider_order_id": string,"p_provider_subscription_id"?: string,"p_replaces_customer_id"?: string }; Returns: Database["public"]['Tables']["orders"]['Row']
                          SetofOptions: {
        from: "*"
        to: "orders"
        isOneToOne: true
        isSetofReturn: false
      } },
"available_credits":
{ Args: { "p_organization_id": string }; Returns: number
                           },
"billing_portal_customer":
{ Args: { "p_organization_id": string,"p_provider": string }; Returns: string
                           },
"cancel_checkout_order":
{ Args: { "p_order_id": string,"p_reason": string }; Returns: undefined
                           },
"cancel_open_upgrade_orders":
{ Args: { "p_organization_id": string,"p_reason": string }; Returns: number
                           },
"cancel_subscription":
{ Args: { "p_at_period_end"?: boolean,"p_organization_id": string }; Returns: Json
                           },
"change_plan":
{ Args: { "p_discount_code"?: string,"p_organization_id": string,"p_plan_code": string }; Returns: Json
                           },
"charge_grants":
{ Args: { "p_charge_id": string }; Returns: Json
                           },
"check_batch_limit":
{ Args: { "p_limit": number }; Returns: undefined
                           },
"check_credit_request_id":
{ Args: { "p_function": string,"p_request_id": string }; Returns: undefined
                           },
"check_discount_limits":
{ Args: { "p_at": string,"p_code": Omit<Database["billing"]['Tables']["discount_codes"]['Row'], Database["billing"]['Tables']["discount_codes"]['ComputedFields']>,"p_organization_id": string,"p_superseding"?: boolean }; Returns: undefined
                           },
"check_owned_organizations":
{ Args: { "p_adding": number,"p_user_id": string }; Returns: undefined
                           },
"checkout_answer":
{ Args: { "p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']>,"p_razorpay_plan_id": string,"p_user_id": string }; Returns: Database["billing"]['CompositeTypes']["checkout_order"]
                          SetofOptions: {
        from: "*"
        to: "checkout_order"
        isOneToOne: true
        isSetofReturn: false
      } },
"checkout_currency":
{ Args: { "p_currency": string,"p_organization_id": string,"p_plan": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']> }; Returns: string
                           },
"checkout_discount":
{ Args: { "p_at": string,"p_code": string,"p_organization_id": string,"p_plan": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']>,"p_recurring"?: boolean }; Returns: Json
                           },
"checkout_provider":
{ Args: { "p_provider": string }; Returns: Database["public"]['Enums']["payment_provider"]
                           },
"checkout_provider_plan":
{ Args: { "p_at": string,"p_organization_id": string,"p_plan": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']>,"p_provider": Database["public"]['Enums']["payment_provider"] }; Returns: string
                           },
"claim_ai_batches":
{ Args: { "p_limit"?: number }; Returns: {
              "groq_batch_id": string,"id": string,"organization_id": string,"recover": boolean,"run": number,"state": Database["public"]['Enums']["ai_batch_state"]
            }[]
                           },
"claim_discount_on_capture":
{ Args: { "p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']> }; Returns: string
                           },
"claim_notification_deliveries":
{ Args: { "p_limit"?: number }; Returns: {
              "attempts": number,"context": Json,"created_at": string,"dedupe_key": string,"id": string,"kind": Database["public"]['Enums']["notification_kind"],"organization_id": string,"payload": Json,"recipients": (string)[],"subscription_id": string
            }[]
                           },
"claim_notifications":
{ Args: { "p_limit"?: number }; Returns: Database["public"]['Tables']["notifications"]['Row'][]
                          SetofOptions: {
        from: "*"
        to: "notifications"
        isOneToOne: false
        isSetofReturn: true
      } },
"claim_provider_actions":
{ Args: { "p_limit"?: number }; Returns: {
              "attempts": number,
"completed_at": string | null,
"created_at": string,
"id": string,
"idempotency_key": string,
"kind": Database["billing"]['Enums']["provider_action_kind"],
"last_error": string | null,
"locked_until": string | null,
"max_attempts": number,
"next_attempt_at": string,
"organization_id": string,
"payload": NonNullable<Json>,
"payment_event_id": string | null,
"provider": Database["public"]['Enums']["payment_provider"],
"reason": string | null,
"requested_by": Database["public"]['Enums']["actor_kind"],
"result": Json | null,
"seq": number,
"state": Database["billing"]['Enums']["provider_action_state"],
"subscription_id": string | null,
"target": NonNullable<Json>,
"updated_at": string
            }[]
                          SetofOptions: {
        from: "*"
        to: "provider_actions"
        isOneToOne: false
        isSetofReturn: true
      } },
"complete_free_order":
{ Args: { "p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']> }; Returns: Database["public"]['Tables']["orders"]['Row']
                          SetofOptions: {
        from: "orders"
        to: "orders"
        isOneToOne: true
        isSetofReturn: false
      } },
"complete_provider_action":
{ Args: { "p_error"?: string,"p_id": string,"p_outcome": string,"p_result"?: Json,"p_retry_after_seconds"?: number }; Returns: Database["billing"]['Enums']["provider_action_state"]
                           },
"compute_line_tax":
{ Args: { "p_amount_cents": number,"p_gst_rate_bp": number,"p_includes_tax": boolean,"p_supply_type": string }; Returns: Record<string, unknown>
                           },
"confirm_billing_email":
{ Args: { "p_token": string }; Returns: Json
                           },
"consume_credits":
{ Args: { "p_event": string,"p_organization_id": string,"p_quantity": number,"p_request_id": string }; Returns: Record<string, unknown>
                           },
"count_usage_past_limit":
{ Args: { "p_amount": number,"p_at": string,"p_credit_request_id": string,"p_event": string,"p_features": Json,"p_metric": string,"p_organization_id": string,"p_timezone": string,"p_units": (Database["public"]['Enums']["usage_window"])[] }; Returns: Record<string, unknown>
                           },
"create_checkout_order":
{ Args: { "p_currency"?: string,"p_discount_code"?: string,"p_organization_id": string,"p_plan_code": string,"p_provider": string }; Returns: Database["billing"]['CompositeTypes']["checkout_order"][]
                          SetofOptions: {
        from: "*"
        to: "checkout_order"
        isOneToOne: false
        isSetofReturn: true
      } },
"create_credit_pack_order":
{ Args: { "p_credit_pack_code": string,"p_organization_id": string,"p_provider": string }; Returns: Database["billing"]['CompositeTypes']["checkout_order"][]
                          SetofOptions: {
        from: "*"
        to: "checkout_order"
        isOneToOne: false
        isSetofReturn: true
      } },
"create_discount_code":
{ Args: { "p_code": string,"p_spec": Json }; Returns: {
              "active": boolean,
"amount_paise": number | null,
"code": string,
"created_at": string,
"deactivated_at": string | null,
"deactivated_reason": string | null,
"duration": Database["public"]['Enums']["discount_duration"],
"first_purchase_only": boolean,
"id": string,
"max_per_organization": number | null,
"max_redemptions": number | null,
"percent_bps": number | null,
"periods": number | null,
"plans": (string)[] | null,
"redemptions_ended_at": string | null,
"updated_at": string,
"valid_from": string | null,
"valid_until": string | null
            }
                          SetofOptions: {
        from: "*"
        to: "discount_codes"
        isOneToOne: true
        isSetofReturn: false
      } },
"create_organization":
{ Args: { "p_name": string }; Returns: string
                           },
"credit_ledger_balance":
{ Args: { "p_organization_id": string }; Returns: number
                           },
"credit_ledger_problems":
{ Args: Record<PropertyKey, never>; Returns: {
              "grant_id": string,"organization_id": string,"problem": string
            }[]
                           },
"credit_note_split":
{ Args: { "p_amount_cents": number,"p_credited_cgst": number,"p_credited_igst": number,"p_credited_sgst": number,"p_credited_total": number,"p_invoice": Omit<Database["public"]['Tables']["invoices"]['Row'], Database["public"]['Tables']["invoices"]['ComputedFields']> }; Returns: Record<string, unknown>
                           },
"credits_low_threshold":
{ Args: { "p_organization_id": string }; Returns: number
                           },
"cut_period_credits":
{ Args: { "p_at": string,"p_subscription": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']> }; Returns: undefined
                           },
"deactivate_discount_code":
{ Args: { "p_code": string,"p_end_redemptions"?: boolean,"p_reason": string }; Returns: {
              "active": boolean,
"amount_paise": number | null,
"code": string,
"created_at": string,
"deactivated_at": string | null,
"deactivated_reason": string | null,
"duration": Database["public"]['Enums']["discount_duration"],
"first_purchase_only": boolean,
"id": string,
"max_per_organization": number | null,
"max_redemptions": number | null,
"percent_bps": number | null,
"periods": number | null,
"plans": (string)[] | null,
"redemptions_ended_at": string | null,
"updated_at": string,
"valid_from": string | null,
"valid_until": string | null
            }
                          SetofOptions: {
        from: "*"
        to: "discount_codes"
        isOneToOne: true
        isSetofReturn: false
      } },
"discount_amount":
{ Args: { "p_price_cents": number,"p_terms": Json }; Returns: number
                           },
"discount_periods_left":
{ Args: { "p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']> }; Returns: number
                           },
"discount_redemptions_counted":
{ Args: { "p_at": string,"p_code_id": string,"p_organization_id": string }; Returns: number
                           },
"discount_terms":
{ Args: { "p_code": Omit<Database["billing"]['Tables']["discount_codes"]['Row'], Database["billing"]['Tables']["discount_codes"]['ComputedFields']> }; Returns: Json
                           },
"div_round_half_up":
{ Args: { "p_denominator": number,"p_numerator": number }; Returns: number
                           },
"draw_credits":
{ Args: { "p_charge": Omit<Database["public"]['Tables']["credit_charges"]['Row'], Database["public"]['Tables']["credit_charges"]['ComputedFields']>,"p_credits": number,"p_held": number }; Returns: Json
                           },
"dunning_batch":
{ Args: { "p_limit": number }; Returns: number
                           },
"effective_plan":
{ Args: { "p_at": string,"p_organization_id": string }; Returns: Record<string, unknown>
                           },
"effective_plan_rows":
{ Args: { "p_at": string,"p_organization_id": string }; Returns: {
              "current_period_end": string,"features": Json,"grace_ends_at": string,"in_grace": boolean,"organization_id": string,"plan_code": string,"plan_id": string,"reason": string,"subscription_id": string,"subscription_status": Database["public"]['Enums']["subscription_status"],"tier": string,"timezone": string
            }[]
                           },
"end_paid_period":
{ Args: { "p_action": string,"p_captured": Omit<Database["public"]['Tables']["payment_events"]['Row'], Database["public"]['Tables']["payment_events"]['ComputedFields']>,"p_event": Json,"p_notification": string,"p_reason": string }; Returns: string
                           },
"end_unpaid_trials":
{ Args: { "p_job": Json,"p_limit": number,"p_now": string }; Returns: number
                           },
"exchange_rate_at":
{ Args: { "p_at": string,"p_currency": string }; Returns: number
                           },
"expire_after_grace":
{ Args: { "p_job": Json,"p_limit": number,"p_now": string }; Returns: number
                           },
"expire_batch":
{ Args: { "p_limit": number }; Returns: number
                           },
"expire_credits_batch":
{ Args: { "p_limit": number }; Returns: number
                           },
"expire_lapsed_grants":
{ Args: { "p_organization_id": string }; Returns: number
                           },
"expire_scheduled_cancellations":
{ Args: { "p_job": Json,"p_limit": number,"p_now": string }; Returns: number
                           },
"export_endorsement":
{ Args: { "p_invoice": Omit<Database["public"]['Tables']["invoices"]['Row'], Database["public"]['Tables']["invoices"]['ComputedFields']> }; Returns: string
                           },
"extend_subscription_for_payment":
{ Args: { "p_event": Json,"p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']>,"p_payment_event_id": string,"p_provider_subscription_id": string }; Returns: Database["public"]['Tables']["subscriptions"]['Row']
                          SetofOptions: {
        from: "*"
        to: "subscriptions"
        isOneToOne: true
        isSetofReturn: false
      } },
"financial_year":
{ Args: { "p_at": string }; Returns: number
                           },
"financial_year_label":
{ Args: { "p_financial_year": number }; Returns: string
                           },
"follow_provider_subscription":
{ Args: { "p_applied_payment": boolean,"p_event": Json,"p_event_at": string,"p_provider_subscription_id": string,"p_status": string }; Returns: string
                           },
"format_document_number":
{ Args: { "p_financial_year": number,"p_prefix": string,"p_serial": number }; Returns: string
                           },
"format_money":
{ Args: { "p_cents": number,"p_currency": string }; Returns: string
                           },
"get_ai_batch":
{ Args: { "p_batch_id": string }; Returns: Json
                           },
"get_credit_balance":
{ Args: { "p_organization_id": string }; Returns: Json
                           },
"get_provider_actions":
{ Args: { "p_organization_id": string }; Returns: {
              "attempts": number,"completed_at": string,"created_at": string,"id": string,"kind": string,"last_error": string,"next_attempt_at": string,"provider": Database["public"]['Enums']["payment_provider"],"reason": string,"state": string
            }[]
                           },
"get_usage":
{ Args: { "p_organization_id": string }; Returns: {
              "limit_amount": number,"metric": string,"percent": number,"remaining": number,"resets_at": string,"scope": string,"used": number,"window_start": string,"window_unit": Database["public"]['Enums']["usage_window"]
            }[]
                           },
"grace_interval":
{ Args: Record<PropertyKey, never>; Returns: string
                           },
"grant_pack_credits":
{ Args: { "p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']>,"p_payment_event_id": string }; Returns: Database["public"]['Tables']["credit_grants"]['Row']
                          SetofOptions: {
        from: "*"
        to: "credit_grants"
        isOneToOne: true
        isSetofReturn: false
      } },
"gst_state_name":
{ Args: { "p_code": string }; Returns: string
                           },
"gstin_check_char":
{ Args: { "p_gstin": string }; Returns: string
                           },
"gstin_problem":
{ Args: { "p_gstin": string }; Returns: string
                           },
"increment_usage_general":
{ Args: { "p_amount": number,"p_features": Json,"p_metric": string,"p_now": string,"p_organization_id": string,"p_request_id": string,"p_timezone": string }; Returns: Record<string, unknown>
                           },
"interval_length":
{ Args: { "p_interval": Database["public"]['Enums']["billing_interval"] }; Returns: string
                           },
"invoice_party":
{ Args: { "p_address_line1": string,"p_address_line2": string,"p_city": string,"p_country": string,"p_email": string,"p_gstin": string,"p_legal_name": string,"p_postal_code": string,"p_state_code": string }; Returns: Json
                           },
"is_non_negative_integer":
{ Args: { "p_value": Json }; Returns: boolean
                           },
"is_upgrade":
{ Args: { "p_from": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']>,"p_to": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']> }; Returns: boolean
                           },
"issue_credit_note":
{ Args: { "p_amount_cents": number,"p_invoice_id": string,"p_kind"?: string,"p_payment_event_id"?: string,"p_reason": string }; Returns: string
                           },
"issue_documents":
{ Args: { "p_order_id": string,"p_payment_event_id": string,"p_refund_amount_cents"?: number,"p_refund_event_id"?: string,"p_refund_reason"?: string }; Returns: Record<string, unknown>
                           },
"issue_invoice":
{ Args: { "p_order_id": string,"p_payment_event_id": string }; Returns: string
                           },
"job_ai_purge_cache":
{ Args: { "p_limit"?: number }; Returns: number
                           },
"job_ai_release_stale_reservations":
{ Args: { "p_limit"?: number }; Returns: number
                           },
"job_dunning":
{ Args: { "p_limit"?: number }; Returns: number
                           },
"job_expire":
{ Args: { "p_limit"?: number }; Returns: number
                           },
"job_expire_credits":
{ Args: { "p_limit"?: number }; Returns: number
                           },
"job_finished":
{ Args: { "p_error": string,"p_rows": number,"p_run_id": number }; Returns: undefined
                           },
"job_maintain_partitions":
{ Args: Record<PropertyKey, never>; Returns: number
                           },
"job_purge":
{ Args: { "p_limit"?: number }; Returns: number
                           },
"job_renewal_reminders":
{ Args: { "p_limit"?: number }; Returns: number
                           },
"job_revenue_analytics":
{ Args: { "p_limit"?: number }; Returns: number
                           },
"job_started":
{ Args: { "p_job_name": string,"p_limit": number }; Returns: number
                           },
"jsonb_uuid":
{ Args: { "p_text": string }; Returns: string
                           },
"keep_provider_setting":
{ Args: { "p_name": string,"p_provider": Database["public"]['Enums']["payment_provider"],"p_value": string }; Returns: string
                           },
"live_subscription_for_operator":
{ Args: { "p_organization_id": string }; Returns: Database["public"]['Tables']["subscriptions"]['Row']
                          SetofOptions: {
        from: "*"
        to: "subscriptions"
        isOneToOne: true
        isSetofReturn: false
      } },
"lock_ai_batch_requests":
{ Args: { "p_batch_id": string }; Returns: string[]
                           },
"lock_credits":
{ Args: { "p_organization_id": string }; Returns: undefined
                           },
"lock_open_upgrade_orders":
{ Args: { "p_organization_id": string }; Returns: undefined
                           },
"log_operator_pricing":
{ Args: { "p_action": string,"p_metadata": Json,"p_organization_id": string,"p_plan_id": string,"p_reason": string }; Returns: string
                           },
"log_subscription_intent":
{ Args: { "p_action": string,"p_actor_id"?: string,"p_actor_kind": string,"p_metadata"?: Json,"p_plan_id": string,"p_reason"?: string,"p_subscription_id": string }; Returns: undefined
                           },
"lut_for":
{ Args: { "p_at": string }; Returns: {
              "arn": string,
"filed_on": string | null,
"financial_year": string,
"id": string,
"reason": string,
"recorded_at": string,
"superseded_at": string | null
            }
                          SetofOptions: {
        from: "*"
        to: "lut_registrations"
        isOneToOne: true
        isSetofReturn: false
      } },
"maintain_partitions":
{ Args: { "p_at"?: string }; Returns: number
                           },
"maintain_partitions_batch":
{ Args: { "p_limit": number }; Returns: number
                           },
"managers":
{ Args: Record<PropertyKey, never>; Returns: (Database["public"]['Enums']["member_role"])[]
                           },
"mandate_debit_amount":
{ Args: { "p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']> }; Returns: Record<string, unknown>
                           },
"mark_notification_failed":
{ Args: { "p_error": string,"p_id": string }; Returns: boolean
                           },
"mark_notification_sent":
{ Args: { "p_error"?: string,"p_id": string }; Returns: boolean
                           },
"mark_past_due":
{ Args: { "p_job": Json,"p_limit": number,"p_now": string }; Returns: number
                           },
"match_order":
{ Args: { "p_event": Json }; Returns: Database["public"]['Tables']["orders"]['Row']
                          SetofOptions: {
        from: "*"
        to: "orders"
        isOneToOne: true
        isSetofReturn: false
      } },
"member_organization_ids":
{ Args: { "p_roles"?: (string)[] }; Returns: string[]
                           },
"metric_display_name":
{ Args: { "p_metric": string }; Returns: string
                           },
"next_serial":
{ Args: { "p_financial_year": number,"p_series": string }; Returns: number
                           },
"nominal_seconds":
{ Args: { "p_interval": Database["public"]['Enums']["billing_interval"] }; Returns: number
                           },
"notification_audience":
{ Args: { "p_kind": Database["public"]['Enums']["notification_kind"] }; Returns: string
                           },
"notification_context":
{ Args: { "p_notification_id": string }; Returns: Json
                           },
"notification_recipients":
{ Args: { "p_notification_id": string }; Returns: (string)[]
                           },
"now":
{ Args: Record<PropertyKey, never>; Returns: string
                           },
"number_in_words":
{ Args: { "p_number": number }; Returns: string
                           },
"operator_assign_plan":
{ Args: { "p_contract_ref"?: string,"p_organization_id": string,"p_plan_code": string,"p_reason": string }; Returns: string
                           },
"operator_cancel":
{ Args: { "p_at_period_end": boolean,"p_organization_id": string,"p_reason": string }; Returns: Database["public"]['Enums']["subscription_status"]
                           },
"operator_end_price_override":
{ Args: { "p_price_override_id": string,"p_reason": string }; Returns: string
                           },
"operator_extend_period":
{ Args: { "p_interval": string,"p_organization_id": string,"p_reason": string }; Returns: string
                           },
"operator_grant_credits":
{ Args: { "p_amount": number,"p_expires_at": string,"p_organization_id": string,"p_reason": string,"p_source"?: Database["public"]['Enums']["credit_source"] }; Returns: Database["public"]['Tables']["credit_grants"]['Row']
                          SetofOptions: {
        from: "*"
        to: "credit_grants"
        isOneToOne: true
        isSetofReturn: false
      } },
"operator_grant_plan":
{ Args: { "p_organization_id": string,"p_plan_code": string,"p_reason": string,"p_until": string }; Returns: string
                           },
"operator_record_lut":
{ Args: { "p_arn": string,"p_filed_on": string,"p_financial_year": string,"p_reason": string }; Returns: string
                           },
"operator_refund":
{ Args: { "p_amount_cents": number,"p_payment_event_id": string,"p_reason": string }; Returns: string
                           },
"operator_resolve_refund":
{ Args: { "p_action_id": string,"p_provider_refund_id"?: string,"p_reason": string,"p_refunded": boolean }; Returns: Database["billing"]['Enums']["provider_action_state"]
                           },
"operator_resume":
{ Args: { "p_organization_id": string,"p_reason": string }; Returns: Database["public"]['Enums']["subscription_status"]
                           },
"operator_set_exchange_rate":
{ Args: { "p_currency": string,"p_effective_from": string,"p_inr_per_unit": number,"p_reason": string }; Returns: string
                           },
"operator_set_price_override":
{ Args: { "p_contract_ref": string,"p_organization_id": string,"p_plan_code": string,"p_price_paise": number,"p_reason": string,"p_valid_from": string,"p_valid_until": string }; Returns: string
                           },
"operator_unassign_plan":
{ Args: { "p_organization_id": string,"p_plan_code": string,"p_reason": string }; Returns: boolean
                           },
"order_quote_problem":
{ Args: { "p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']>,"p_paid_at": string }; Returns: string
                           },
"order_tax_quote":
{ Args: { "p_currency": string,"p_includes_tax": boolean,"p_organization_id": string,"p_price_cents": number }; Returns: Record<string, unknown>
                           },
"paid_unused_value":
{ Args: { "p_at": string,"p_period_end": string,"p_period_start": string,"p_plan": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']>,"p_sub": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']> }; Returns: Record<string, unknown>
                           },
"period_end_after":
{ Args: { "p_interval": Database["public"]['Enums']["billing_interval"],"p_start": string,"p_timezone": string }; Returns: string
                           } |
{ Args: { "p_anchor": string,"p_interval": Database["public"]['Enums']["billing_interval"],"p_start": string,"p_timezone": string }; Returns: string
                           },
"period_end_without":
{ Args: { "p_payment_event_id": string,"p_subscription_id": string }; Returns: string
                           },
"plan_change_quote":
{ Args: { "p_at": string,"p_discount_code"?: string,"p_organization_id": string,"p_plan_code": string }; Returns: Json
                           },
"plan_in_currency":
{ Args: { "p_currency": string,"p_plan": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']> }; Returns: Database["public"]['Tables']["billing_plans"]['Row']
                          SetofOptions: {
        from: "*"
        to: "billing_plans"
        isOneToOne: true
        isSetofReturn: false
      } },
"plan_price_for":
{ Args: { "p_at": string,"p_organization_id": string,"p_plan": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']> }; Returns: number
                           },
"prepare_order_checkout":
{ Args: { "p_order_id": string,"p_organization_id": string,"p_provider": string }; Returns: Database["billing"]['CompositeTypes']["checkout_order"][]
                          SetofOptions: {
        from: "*"
        to: "checkout_order"
        isOneToOne: false
        isSetofReturn: true
      } },
"preview_checkout":
{ Args: { "p_currency"?: string,"p_discount_code"?: string,"p_organization_id": string,"p_plan_code": string,"p_provider"?: string }; Returns: Json
                           },
"preview_plan_change":
{ Args: { "p_discount_code"?: string,"p_organization_id": string,"p_plan_code": string }; Returns: Json
                           },
"price_override_at":
{ Args: { "p_at": string,"p_organization_id": string,"p_plan_id": string }; Returns: Database["public"]['Tables']["price_overrides"]['Row']
                          SetofOptions: {
        from: "*"
        to: "price_overrides"
        isOneToOne: true
        isSetofReturn: false
      } },
"pricing_target":
{ Args: { "p_organization_id": string,"p_plan_code": string }; Returns: Database["public"]['Tables']["billing_plans"]['Row']
                          SetofOptions: {
        from: "*"
        to: "billing_plans"
        isOneToOne: true
        isSetofReturn: false
      } },
"provider_action":
{ Args: { "p_at_cycle_end": boolean,"p_sub": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']> }; Returns: Json
                           },
"provider_can_resume":
{ Args: { "p_sub": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']> }; Returns: boolean
                           },
"provider_plan_change_action":
{ Args: { "p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']>,"p_quote": Json,"p_sub": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']>,"p_to": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']> }; Returns: Json
                           },
"provider_resume_action":
{ Args: { "p_reason": string,"p_requested_by": string,"p_sub": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']> }; Returns: Json
                           },
"provider_setting":
{ Args: { "p_name": string,"p_provider": Database["public"]['Enums']["payment_provider"] }; Returns: string
                           },
"purge_batch":
{ Args: { "p_limit": number,"p_usage_retention"?: string }; Returns: number
                           },
"put_back_usage":
{ Args: { "p_counts": (number)[],"p_delta": number,"p_inserted": (boolean)[],"p_metric": string,"p_organization_id": string,"p_starts": (string)[],"p_units": (Database["public"]['Enums']["usage_window"])[] }; Returns: undefined
                           },
"queue_ai_batch_completed":
{ Args: { "p_batch": Omit<Database["public"]['Tables']["ai_batches"]['Row'], Database["public"]['Tables']["ai_batches"]['ComputedFields']> }; Returns: undefined
                           },
"queue_credits_low":
{ Args: { "p_after": number,"p_before": number,"p_ledger_id": number,"p_organization_id": string }; Returns: undefined
                           },
"queue_provider_action":
{ Args: { "p_idempotency_key": string,"p_kind": Database["billing"]['Enums']["provider_action_kind"],"p_organization_id": string,"p_payload": Json,"p_payment_event_id"?: string,"p_provider": Database["public"]['Enums']["payment_provider"],"p_reason"?: string,"p_requested_by"?: string,"p_subscription_id"?: string,"p_target": Json }; Returns: string
                           },
"queue_quota_alerts":
{ Args: { "p_after": number,"p_before": number,"p_limit": number,"p_metric": string,"p_organization_id": string,"p_resets_at": string,"p_unit": Database["public"]['Enums']["usage_window"],"p_window_start": string }; Returns: number
                           },
"reconcile_due_orders":
{ Args: { "p_limit"?: number }; Returns: {
              "amount_cents": number,"created_at": string,"currency": string,"order_id": string,"provider": string,"provider_order_id": string,"receipt": string
            }[]
                           },
"reconcile_due_refunds":
{ Args: { "p_every"?: string,"p_limit"?: number,"p_window"?: string }; Returns: {
              "known_refund_ids": (string)[],"payment_event_id": string,"provider": string,"provider_order_id": string,"provider_payment_id": string,"provider_subscription_id": string,"receipt": string
            }[]
                           },
"reconcile_due_subscriptions":
{ Args: { "p_limit"?: number }; Returns: {
              "current_period_end": string,"known_payment_ids": (string)[],"organization_id": string,"provider": string,"provider_status": string,"provider_subscription_id": string,"reason": string,"receipt": string,"status": string,"subscription_id": string
            }[]
                           },
"record_ai_batch_upload":
{ Args: { "p_batch_id": string,"p_groq_batch_id": string,"p_input_file_id": string,"p_run": number }; Returns: boolean
                           },
"record_amount_mismatch":
{ Args: { "p_event": Json,"p_event_at": string,"p_expected_cents": number,"p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']> }; Returns: Json
                           },
"record_credit_movement":
{ Args: { "p_actor_kind"?: Database["public"]['Enums']["actor_kind"],"p_amount": number,"p_charge"?: Omit<Database["public"]['Tables']["credit_charges"]['Row'], Database["public"]['Tables']["credit_charges"]['ComputedFields']>,"p_grant": Omit<Database["public"]['Tables']["credit_grants"]['Row'], Database["public"]['Tables']["credit_grants"]['ComputedFields']>,"p_kind": Database["public"]['Enums']["credit_movement"],"p_reason"?: string }; Returns: number
                           },
"record_payment_event":
{ Args: { "p_amount_cents": number,"p_currency": string,"p_details"?: Json,"p_error_reason"?: string,"p_method"?: string,"p_needs_refund"?: boolean,"p_occurred_at"?: string,"p_order_id": string,"p_organization_id": string,"p_provider": Database["public"]['Enums']["payment_provider"],"p_provider_payment_id": string,"p_status": Database["public"]['Enums']["payment_status"] }; Returns: string
                           },
"record_signature_failure":
{ Args: { "p_count"?: number,"p_provider": string }; Returns: boolean
                           },
"refresh_revenue_analytics":
{ Args: { "p_from"?: string,"p_limit"?: number,"p_to"?: string }; Returns: number
                           },
"refund_action_for":
{ Args: { "p_captured": Omit<Database["public"]['Tables']["payment_events"]['Row'], Database["public"]['Tables']["payment_events"]['ComputedFields']>,"p_event": Json }; Returns: string
                           },
"refundable_paise":
{ Args: { "p_captured": Omit<Database["public"]['Tables']["payment_events"]['Row'], Database["public"]['Tables']["payment_events"]['ComputedFields']>,"p_except_action_id"?: string }; Returns: number
                           },
"refuse_discount":
{ Args: { "p_hint": string,"p_message": string }; Returns: undefined
                           },
"refuse_plan_change":
{ Args: { "p_at": string,"p_from": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']>,"p_sub": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']>,"p_to": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']> }; Returns: undefined
                           },
"release_usage":
{ Args: { "p_organization_id": string,"p_request_id": string }; Returns: number
                           },
"remove_organization_member":
{ Args: { "p_organization_id": string,"p_user_id": string }; Returns: undefined
                           },
"renewal_reminders_batch":
{ Args: { "p_limit": number }; Returns: number
                           },
"require_operator_reason":
{ Args: { "p_reason": string }; Returns: string
                           },
"require_plan_available":
{ Args: { "p_organization_id": string,"p_plan": Omit<Database["public"]['Tables']["billing_plans"]['Row'], Database["public"]['Tables']["billing_plans"]['ComputedFields']> }; Returns: undefined
                           },
"require_provider_currency":
{ Args: { "p_currency": string,"p_provider": string }; Returns: undefined
                           },
"require_role":
{ Args: { "p_action"?: string,"p_organization_id": string,"p_roles": (Database["public"]['Enums']["member_role"])[] }; Returns: Database["public"]['Enums']["member_role"]
                           },
"require_user":
{ Args: Record<PropertyKey, never>; Returns: string
                           },
"reserve_discount":
{ Args: { "p_discount": Json,"p_order": Omit<Database["public"]['Tables']["orders"]['Row'], Database["public"]['Tables']["orders"]['ComputedFields']> }; Returns: string
                           },
"resume_subscription":
{ Args: { "p_organization_id": string }; Returns: Json
                           },
"retry_backoff":
{ Args: { "p_attempt": number,"p_retry_after_seconds": number }; Returns: string
                           },
"retry_notification":
{ Args: { "p_error": string,"p_id": string,"p_retry_after_seconds"?: number }; Returns: string
                           },
"return_credits":
{ Args: { "p_charge": Omit<Database["public"]['Tables']["credit_charges"]['Row'], Database["public"]['Tables']["credit_charges"]['ComputedFields']>,"p_credits": number }; Returns: number
                           },
"revenue_analytics_batch":
{ Args: { "p_limit": number }; Returns: number
                           },
"revenue_movements":
{ Args: { "p_at": string,"p_start": string }; Returns: {
              "mrr_after": number,"mrr_before": number,"organization_id": string,"paid_before": boolean
            }[]
                           },
"revenue_payments":
{ Args: { "p_at": string,"p_start": string }; Returns: {
              "amount": number,"gst": number,"net": number,"plan_code": string,"provider": Database["public"]['Enums']["payment_provider"],"status": Database["public"]['Enums']["payment_status"]
            }[]
                           },
"revenue_summary":
{ Args: { "p_day"?: string }; Returns: Json
                           },
"revoke_credits":
{ Args: { "p_actor_kind"?: Database["public"]['Enums']["actor_kind"],"p_amount": number,"p_grant_id": string,"p_reason": string }; Returns: number
                           },
"revoke_pack_credits":
{ Args: { "p_amount": number,"p_captured": Omit<Database["public"]['Tables']["payment_events"]['Row'], Database["public"]['Tables']["payment_events"]['ComputedFields']>,"p_reason": string,"p_taken_before": number }; Returns: Record<string, unknown>
                           },
"run_job":
{ Args: { "p_batch": unknown,"p_job_name": string,"p_limit": number }; Returns: number
                           },
"schedule_jobs":
{ Args: Record<PropertyKey, never>; Returns: {
              "detail": string,"job": string,"schedule": string,"state": string
            }[]
                           },
"secure_partition":
{ Args: { "p_parent": unknown,"p_partition": unknown,"p_schema": unknown }; Returns: undefined
                           },
"set_change_context":
{ Args: { "p_action": string,"p_actor_id"?: string,"p_actor_kind": string,"p_effective_at"?: string,"p_metadata"?: Json,"p_reason"?: string,"p_when_due"?: boolean }; Returns: undefined
                           },
"set_member_role":
{ Args: { "p_organization_id": string,"p_role": Database["public"]['Enums']["member_role"],"p_user_id": string }; Returns: undefined
                           },
"settle_ai_batch":
{ Args: { "p_batch_id": string,"p_error_file_id"?: string,"p_output_file_id"?: string,"p_results": Json,"p_run": number }; Returns: Record<string, unknown>
                           },
"settle_credits":
{ Args: { "p_credits": number,"p_organization_id": string,"p_request_id": string }; Returns: Record<string, unknown>
                           },
"settle_usage":
{ Args: { "p_actual_amount": number,"p_metric"?: string,"p_organization_id": string,"p_request_id": string }; Returns: Record<string, unknown>
                           },
"simulated_now":
{ Args: Record<PropertyKey, never>; Returns: string
                           },
"start_trial":
{ Args: { "p_organization_id": string,"p_plan_code": string }; Returns: Json
                           },
"stop_unbacked_mandate":
{ Args: { "p_organization_id": string,"p_provider": Database["public"]['Enums']["payment_provider"],"p_provider_subscription_id": string,"p_reason": string,"p_subscription_id"?: string }; Returns: string
                           },
"submit_ai_batch":
{ Args: { "p_organization_id": string,"p_requests": Json }; Returns: string
                           },
"subscription_change_action":
{ Args: { "p_new": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']>,"p_old": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']> }; Returns: string
                           },
"subscription_changed_columns":
{ Args: { "p_new": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']>,"p_old": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']> }; Returns: (string)[]
                           },
"subscription_intent_actions":
{ Args: Record<PropertyKey, never>; Returns: (string)[]
                           },
"subscription_states_at":
{ Args: { "p_at": string }; Returns: {
              "mrr": number,"organization_id": string,"plan_code": string,"status": Database["public"]['Enums']["subscription_status"],"subscription_id": string
            }[]
                           },
"subscription_status_for":
{ Args: { "p_current_period_end": string,"p_now": string,"p_provider_status": string }; Returns: Database["public"]['Enums']["subscription_status"]
                           },
"sync_provider_status":
{ Args: { "p_event": Json,"p_provider_status": string,"p_status_at": string,"p_subscription_id": string }; Returns: boolean
                           },
"take_change_context":
{ Args: Record<PropertyKey, never>; Returns: Json
                           },
"tax_document_exists":
{ Args: { "p_document_id": string }; Returns: boolean
                           },
"track_usage":
{ Args: { "p_events": Json,"p_user_id"?: string }; Returns: {
              "allowed": boolean,"credits_charged": number,"duplicate": boolean,"error": string,"limit_amount": number,"ordinal": number,"remaining": number,"resets_at": string,"used": number
            }[]
                           },
"unresolved_refund_action":
{ Args: { "p_captured": Omit<Database["public"]['Tables']["payment_events"]['Row'], Database["public"]['Tables']["payment_events"]['ComputedFields']> }; Returns: {
              "attempts": number,
"completed_at": string | null,
"created_at": string,
"id": string,
"idempotency_key": string,
"kind": Database["billing"]['Enums']["provider_action_kind"],
"last_error": string | null,
"locked_until": string | null,
"max_attempts": number,
"next_attempt_at": string,
"organization_id": string,
"payload": NonNullable<Json>,
"payment_event_id": string | null,
"provider": Database["public"]['Enums']["payment_provider"],
"reason": string | null,
"requested_by": Database["public"]['Enums']["actor_kind"],
"result": Json | null,
"seq": number,
"state": Database["billing"]['Enums']["provider_action_state"],
"subscription_id": string | null,
"target": NonNullable<Json>,
"updated_at": string
            }
                          SetofOptions: {
        from: "payment_events"
        to: "provider_actions"
        isOneToOne: true
        isSetofReturn: false
      } },
"unused_value":
{ Args: { "p_at": string,"p_interval": Database["public"]['Enums']["billing_interval"],"p_period_end": string,"p_period_start": string,"p_price_cents": number }; Returns: Record<string, unknown>
                           },
"update_billing_profile":
{ Args: { "p_address_line1"?: string,"p_address_line2"?: string,"p_billing_email"?: string,"p_billing_name": string,"p_city"?: string,"p_country"?: string,"p_gstin"?: string,"p_organization_id": string,"p_postal_code"?: string,"p_state_code"?: string }; Returns: Database["public"]['Tables']["organizations"]['Row']
                          SetofOptions: {
        from: "*"
        to: "organizations"
        isOneToOne: true
        isSetofReturn: false
      } },
"usage_credit_request_id":
{ Args: { "p_metric": string,"p_recount": boolean,"p_request": string }; Returns: string
                           },
"usage_request_locks":
{ Args: { "p_at": string,"p_metrics": (string)[],"p_organization_ids": (string)[],"p_request_ids": (string)[] }; Returns: undefined
                           },
"usage_windows":
{ Args: { "p_at": string,"p_features": Json,"p_metric": string,"p_timezone": string,"p_units": (Database["public"]['Enums']["usage_window"])[] }; Returns: {
              "ends": string,"lim": number,"starts": string,"unit": Database["public"]['Enums']["usage_window"]
            }[]
                           },
"validate_payment_event":
{ Args: { "p_event": Json }; Returns: undefined
                           },
"validate_plan_features":
{ Args: { "p_features": Json }; Returns: undefined
                           },
"void_invoice":
{ Args: { "p_invoice_id": string,"p_reason": string }; Returns: string
                           },
"write_usage_counters":
{ Args: { "p_after": (number)[],"p_before": (number)[],"p_ends": (string)[],"p_limits": (number)[],"p_metrics": (string)[],"p_organization_ids": (string)[],"p_starts": (string)[],"p_units": (Database["public"]['Enums']["usage_window"])[],"p_write"?: boolean }; Returns: undefined
                           }
          }
          Enums: {
            "provider_action_kind": "cancel"|"pause"|"resume"|"change_plan"|"refund"|"fetch_payment","provider_action_state": "pending"|"running"|"succeeded"|"failed","provider_event_kind": "payment_captured"|"payment_failed"|"payment_authorized"|"payment_pending"|"refund_processed"|"subscription_status"|"other"|"dispute_opened"|"dispute_won"|"dispute_lost"|"refund_failed"
          }
          CompositeTypes: {
            "ai_reservation": {
                        "allowed": boolean | null,"denial": string | null,"request_id": string | null,"plan_code": string | null,"max_tokens": number | null,"reserved_tokens": number | null,"cached_response": Json | null,"rate_limit": number | null,"rate_remaining": number | null,"rate_reset_seconds": number | null,"limit_amount": number | null,"remaining": number | null,"retry_after_seconds": number | null,"token_limit": number | null,"token_remaining": number | null,"token_reset_seconds": number | null
                      },"checkout_order": {
                        "order_id": string | null,"receipt": string | null,"status": string | null,"amount_cents": number | null,"currency": string | null,"plan_code": string | null,"plan_name": string | null,"plan_interval": Database["public"]['Enums']["billing_interval"] | null,"razorpay_plan_id": string | null,"razorpay_total_count": number | null,"buyer_email": string | null,"buyer_name": string | null,"expires_at": string | null,"provider_plan_id": string | null,"provider_customer_id": string | null,"buyer_address": Json | null,"list_cents": number | null,"discount_cents": number | null,"discount_periods": number | null
                      }
          }
        },"public": {
          Tables: {
            "ai_batch_requests": {
                  Row: {
                    "answer": Json | null,"batch_id": string,"charged_paise": number | null,"completion_tokens": number | null,"cost_paise": number | null,"created_at": string,"error_code": string | null,"max_tokens": number,"organization_id": string,"position": number,"prompt_tokens": number | null,"request": NonNullable<Json>,"request_id": string,"settled_at": string | null,"state": Database["public"]['Enums']["ai_batch_request_state"]
                  }
                  ComputedFields: never
                  Insert: {
                    "answer"?: Json | null,"batch_id": string,"charged_paise"?: number | null,"completion_tokens"?: number | null,"cost_paise"?: number | null,"created_at"?: string,"error_code"?: string | null,"max_tokens": number,"organization_id": string,"position": number,"prompt_tokens"?: number | null,"request": NonNullable<Json>,"request_id": string,"settled_at"?: string | null,"state"?: Database["public"]['Enums']["ai_batch_request_state"]
                  }
                  Update: {
                    "answer"?: Json | null,"batch_id"?: string,"charged_paise"?: number | null,"completion_tokens"?: number | null,"cost_paise"?: number | null,"created_at"?: string,"error_code"?: string | null,"max_tokens"?: number,"organization_id"?: string,"position"?: number,"prompt_tokens"?: number | null,"request"?: NonNullable<Json>,"request_id"?: string,"settled_at"?: string | null,"state"?: Database["public"]['Enums']["ai_batch_request_state"]
                  }
                  Relationships: [
                    {
      foreignKeyName: "ai_batch_requests_batch_id_fkey"
      columns: ["batch_id"]
isOneToOne: false
      referencedRelation: "ai_batches"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "ai_batch_requests_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"ai_batches": {
                  Row: {
                    "charged_paise": number | null,"completed_at": string | null,"created_at": string,"due_at": string,"error_file_id": string | null,"failed_count": number | null,"groq_batch_id": string | null,"groq_status": string | null,"id": string,"input_file_id": string | null,"last_error": string | null,"locked_until": string | null,"organization_id": string,"output_file_id": string | null,"request_count": number,"run": number,"settled_count": number | null,"state": Database["public"]['Enums']["ai_batch_state"],"submitted_at": string | null,"user_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "charged_paise"?: number | null,"completed_at"?: string | null,"created_at"?: string,"due_at": string,"error_file_id"?: string | null,"failed_count"?: number | null,"groq_batch_id"?: string | null,"groq_status"?: string | null,"id"?: string,"input_file_id"?: string | null,"last_error"?: string | null,"locked_until"?: string | null,"organization_id": string,"output_file_id"?: string | null,"request_count": number,"run"?: number,"settled_count"?: number | null,"state"?: Database["public"]['Enums']["ai_batch_state"],"submitted_at"?: string | null,"user_id"?: string | null
                  }
                  Update: {
                    "charged_paise"?: number | null,"completed_at"?: string | null,"created_at"?: string,"due_at"?: string,"error_file_id"?: string | null,"failed_count"?: number | null,"groq_batch_id"?: string | null,"groq_status"?: string | null,"id"?: string,"input_file_id"?: string | null,"last_error"?: string | null,"locked_until"?: string | null,"organization_id"?: string,"output_file_id"?: string | null,"request_count"?: number,"run"?: number,"settled_count"?: number | null,"state"?: Database["public"]['Enums']["ai_batch_state"],"submitted_at"?: string | null,"user_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "ai_batches_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"ai_model_prices": {
                  Row: {
                    "batch_input_paise_per_million": number | null,"batch_output_paise_per_million": number | null,"cached_input_paise_per_million": number,"created_at": string,"effective_from": string,"input_paise_per_million": number,"model": string,"output_paise_per_million": number
                  }
                  ComputedFields: never
                  Insert: {
                    "batch_input_paise_per_million"?: number | null,"batch_output_paise_per_million"?: number | null,"cached_input_paise_per_million": number,"created_at"?: string,"effective_from": string,"input_paise_per_million": number,"model": string,"output_paise_per_million": number
                  }
                  Update: {
                    "batch_input_paise_per_million"?: number | null,"batch_output_paise_per_million"?: number | null,"cached_input_paise_per_million"?: number,"created_at"?: string,"effective_from"?: string,"input_paise_per_million"?: number,"model"?: string,"output_paise_per_million"?: number
                  }
                  Relationships: [
                    
                  ]
                },"ai_requests": {
                  Row: {
                    "batch": boolean,"cache_key": string | null,"cached": boolean,"cached_prompt_tokens": number | null,"charged_paise": number | null,"completed_at": string | null,"completion_tokens": number | null,"cost_paise": number | null,"counted_tokens": number | null,"created_at": string,"error_code": string | null,"expires_at": string | null,"id": string,"latency_ms": number | null,"max_tokens": number | null,"model": string,"organization_id": string,"price_effective_from": string | null,"prompt_tokens": number | null,"request_id": string,"reserved_paise": number | null,"reserved_tokens": number,"status": Database["public"]['Enums']["ai_request_status"],"stream": boolean,"user_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "batch"?: boolean,"cache_key"?: string | null,"cached"?: boolean,"cached_prompt_tokens"?: number | null,"charged_paise"?: number | null,"completed_at"?: string | null,"completion_tokens"?: number | null,"cost_paise"?: number | null,"counted_tokens"?: number | null,"created_at"?: string,"error_code"?: string | null,"expires_at"?: string | null,"id"?: string,"latency_ms"?: number | null,"max_tokens"?: number | null,"model": string,"organization_id": string,"price_effective_from"?: string | null,"prompt_tokens"?: number | null,"request_id": string,"reserved_paise"?: number | null,"reserved_tokens"?: number,"status": Database["public"]['Enums']["ai_request_status"],"stream"?: boolean,"user_id"?: string | null
                  }
                  Update: {
                    "batch"?: boolean,"cache_key"?: string | null,"cached"?: boolean,"cached_prompt_tokens"?: number | null,"charged_paise"?: number | null,"completed_at"?: string | null,"completion_tokens"?: number | null,"cost_paise"?: number | null,"counted_tokens"?: number | null,"created_at"?: string,"error_code"?: string | null,"expires_at"?: string | null,"id"?: string,"latency_ms"?: number | null,"max_tokens"?: number | null,"model"?: string,"organization_id"?: string,"price_effective_from"?: string | null,"prompt_tokens"?: number | null,"request_id"?: string,"reserved_paise"?: number | null,"reserved_tokens"?: number,"status"?: Database["public"]['Enums']["ai_request_status"],"stream"?: boolean,"user_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "ai_requests_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "ai_requests_price_fkey"
      columns: ["model","price_effective_from"]
isOneToOne: false
      referencedRelation: "ai_model_prices"
      referencedColumns: ["model","effective_from"]
    }
                  ]
                },"billing_plans": {
                  Row: {
                    "active": boolean,"code": string,"created_at": string,"currency": string,"description": string | null,"features": NonNullable<Json>,"id": string,"interval": Database["public"]['Enums']["billing_interval"],"name": string,"price_cents": number,"private": boolean,"provider_config": NonNullable<Json>,"tier": Database["public"]['Enums']["plan_tier"],"trial_days": number,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "active"?: boolean,"code": string,"created_at"?: string,"currency"?: string,"description"?: string | null,"features"?: NonNullable<Json>,"id"?: string,"interval"?: Database["public"]['Enums']["billing_interval"],"name": string,"price_cents": number,"private"?: boolean,"provider_config"?: NonNullable<Json>,"tier": Database["public"]['Enums']["plan_tier"],"trial_days"?: number,"updated_at"?: string
                  }
                  Update: {
                    "active"?: boolean,"code"?: string,"created_at"?: string,"currency"?: string,"description"?: string | null,"features"?: NonNullable<Json>,"id"?: string,"interval"?: Database["public"]['Enums']["billing_interval"],"name"?: string,"price_cents"?: number,"private"?: boolean,"provider_config"?: NonNullable<Json>,"tier"?: Database["public"]['Enums']["plan_tier"],"trial_days"?: number,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"billing_settings": {
                  Row: {
                    "ai_batch_hour_ist": number,"ai_batch_price_factor": number,"ai_request_retention_days": number | null,"app_failure_url": string | null,"app_success_url": string | null,"checkout_order_ttl": string,"created_at": string,"credit_note_prefix": string,"credit_source_order": (Database["public"]['Enums']["credit_source"])[],"credits_low_threshold": number | null,"dispute_suspends_subscription": boolean,"full_refund_ends_period": boolean,"grace_days": number,"gst_rate_bp": number,"id": boolean,"invoice_prefix": string,"job_run_retention_days": number,"max_open_orders": number,"max_owned_organizations": number | null,"notification_retention_days": number,"order_pending_reconcile_after": string,"prices_include_tax": boolean,"provider_currencies": NonNullable<Json>,"quota_alert_thresholds": (number)[],"quota_alert_windows": (Database["public"]['Enums']["usage_window"])[],"sac_code": string,"seller_address_line1": string | null,"seller_address_line2": string | null,"seller_city": string | null,"seller_email": string | null,"seller_gstin": string | null,"seller_legal_name": string | null,"seller_postal_code": string | null,"seller_state_code": string | null,"updated_at": string,"upgrade_quote_ttl": string,"usage_late_horizon": string,"usage_metrics_retention_days": number | null,"webhook_event_retention_days": number | null,"webhook_payload_retention_days": number
                  }
                  ComputedFields: never
                  Insert: {
                    "ai_batch_hour_ist"?: number,"ai_batch_price_factor"?: number,"ai_request_retention_days"?: number | null,"app_failure_url"?: string | null,"app_success_url"?: string | null,"checkout_order_ttl"?: string,"created_at"?: string,"credit_note_prefix"?: string,"credit_source_order"?: (Database["public"]['Enums']["credit_source"])[],"credits_low_threshold"?: number | null,"dispute_suspends_subscription"?: boolean,"full_refund_ends_period"?: boolean,"grace_days"?: number,"gst_rate_bp"?: number,"id"?: boolean,"invoice_prefix"?: string,"job_run_retention_days"?: number,"max_open_orders"?: number,"max_owned_organizations"?: number | null,"notification_retention_days"?: number,"order_pending_reconcile_after"?: string,"prices_include_tax"?: boolean,"provider_currencies"?: NonNullable<Json>,"quota_alert_thresholds"?: (number)[],"quota_alert_windows"?: (Database["public"]['Enums']["usage_window"])[],"sac_code"?: string,"seller_address_line1"?: string | null,"seller_address_line2"?: string | null,"seller_city"?: string | null,"seller_email"?: string | null,"seller_gstin"?: string | null,"seller_legal_name"?: string | null,"seller_postal_code"?: string | null,"seller_state_code"?: string | null,"updated_at"?: string,"upgrade_quote_ttl"?: string,"usage_late_horizon"?: string,"usage_metrics_retention_days"?: number | null,"webhook_event_retention_days"?: number | null,"webhook_payload_retention_days"?: number
                  }
                  Update: {
                    "ai_batch_hour_ist"?: number,"ai_batch_price_factor"?: number,"ai_request_retention_days"?: number | null,"app_failure_url"?: string | null,"app_success_url"?: string | null,"checkout_order_ttl"?: string,"created_at"?: string,"credit_note_prefix"?: string,"credit_source_order"?: (Database["public"]['Enums']["credit_source"])[],"credits_low_threshold"?: number | null,"dispute_suspends_subscription"?: boolean,"full_refund_ends_period"?: boolean,"grace_days"?: number,"gst_rate_bp"?: number,"id"?: boolean,"invoice_prefix"?: string,"job_run_retention_days"?: number,"max_open_orders"?: number,"max_owned_organizations"?: number | null,"notification_retention_days"?: number,"order_pending_reconcile_after"?: string,"prices_include_tax"?: boolean,"provider_currencies"?: NonNullable<Json>,"quota_alert_thresholds"?: (number)[],"quota_alert_windows"?: (Database["public"]['Enums']["usage_window"])[],"sac_code"?: string,"seller_address_line1"?: string | null,"seller_address_line2"?: string | null,"seller_city"?: string | null,"seller_email"?: string | null,"seller_gstin"?: string | null,"seller_legal_name"?: string | null,"seller_postal_code"?: string | null,"seller_state_code"?: string | null,"updated_at"?: string,"upgrade_quote_ttl"?: string,"usage_late_horizon"?: string,"usage_metrics_retention_days"?: number | null,"webhook_event_retention_days"?: number | null,"webhook_payload_retention_days"?: number
                  }
                  Relationships: [
                    
                  ]
                },"credit_charges": {
                  Row: {
                    "charged": number,"created_at": string,"credits": number,"event_code": string,"id": string,"organization_id": string,"quantity": number,"request_id": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "charged": number,"created_at"?: string,"credits": number,"event_code": string,"id"?: string,"organization_id": string,"quantity": number,"request_id"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "charged"?: number,"created_at"?: string,"credits"?: number,"event_code"?: string,"id"?: string,"organization_id"?: string,"quantity"?: number,"request_id"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "credit_charges_event_code_fkey"
      columns: ["event_code"]
isOneToOne: false
      referencedRelation: "credit_events"
      referencedColumns: ["code"]
    },{
      foreignKeyName: "credit_charges_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"credit_events": {
                  Row: {
                    "active": boolean,"code": string,"created_at": string,"credits_per_unit": number,"name": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "active"?: boolean,"code": string,"created_at"?: string,"credits_per_unit": number,"name": string,"updated_at"?: string
                  }
                  Update: {
                    "active"?: boolean,"code"?: string,"created_at"?: string,"credits_per_unit"?: number,"name"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"credit_grants": {
                  Row: {
                    "amount": number,"created_at": string,"created_by": string | null,"dedupe_key": string | null,"effective_from": string,"expired_at": string | null,"expires_at": string | null,"id": string,"order_id": string | null,"organization_id": string,"payment_event_id": string | null,"period_start": string | null,"priority": number,"reason": string | null,"remaining": number,"revoke_owed": number,"revoked_at": string | null,"source": Database["public"]['Enums']["credit_source"],"subscription_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "amount": number,"created_at"?: string,"created_by"?: string | null,"dedupe_key"?: string | null,"effective_from"?: string,"expired_at"?: string | null,"expires_at"?: string | null,"id"?: string,"order_id"?: string | null,"organization_id": string,"payment_event_id"?: string | null,"period_start"?: string | null,"priority"?: number,"reason"?: string | null,"remaining": number,"revoke_owed"?: number,"revoked_at"?: string | null,"source": Database["public"]['Enums']["credit_source"],"subscription_id"?: string | null
                  }
                  Update: {
                    "amount"?: number,"created_at"?: string,"created_by"?: string | null,"dedupe_key"?: string | null,"effective_from"?: string,"expired_at"?: string | null,"expires_at"?: string | null,"id"?: string,"order_id"?: string | null,"organization_id"?: string,"payment_event_id"?: string | null,"period_start"?: string | null,"priority"?: number,"reason"?: string | null,"remaining"?: number,"revoke_owed"?: number,"revoked_at"?: string | null,"source"?: Database["public"]['Enums']["credit_source"],"subscription_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "credit_grants_order_id_fkey"
      columns: ["order_id"]
isOneToOne: false
      referencedRelation: "orders"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "credit_grants_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "credit_grants_subscription_id_fkey"
      columns: ["subscription_id"]
isOneToOne: false
      referencedRelation: "subscriptions"
      referencedColumns: ["id"]
    }
                  ]
                },"credit_ledger": {
                  Row: {
                    "actor": string | null,"actor_kind": Database["public"]['Enums']["actor_kind"],"amount": number,"balance_after": number,"charge_id": string | null,"created_at": string,"event_code": string | null,"grant_id": string,"id": number,"kind": Database["public"]['Enums']["credit_movement"],"organization_id": string,"reason": string | null,"request_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "actor"?: string | null,"actor_kind"?: Database["public"]['Enums']["actor_kind"],"amount": number,"balance_after": number,"charge_id"?: string | null,"created_at"?: string,"event_code"?: string | null,"grant_id": string,"id"?: never,"kind": Database["public"]['Enums']["credit_movement"],"organization_id": string,"reason"?: string | null,"request_id"?: string | null
                  }
                  Update: {
                    "actor"?: string | null,"actor_kind"?: Database["public"]['Enums']["actor_kind"],"amount"?: number,"balance_after"?: number,"charge_id"?: string | null,"created_at"?: string,"event_code"?: string | null,"grant_id"?: string,"id"?: never,"kind"?: Database["public"]['Enums']["credit_movement"],"organization_id"?: string,"reason"?: string | null,"request_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "credit_ledger_charge_id_fkey"
      columns: ["charge_id"]
isOneToOne: false
      referencedRelation: "credit_charges"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "credit_ledger_grant_id_fkey"
      columns: ["grant_id"]
isOneToOne: false
      referencedRelation: "credit_grants"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "credit_ledger_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"credit_notes": {
                  Row: {
                    "cgst_cents": number,"created_at": string,"credit_note_date": string,"credit_note_number": string,"currency": string,"exchange_rate": number | null,"financial_year": number,"id": string,"igst_cents": number,"inr_taxable_paise": number | null,"inr_total_paise": number | null,"invoice_id": string,"issued_at": string,"kind": Database["public"]['Enums']["credit_note_kind"],"organization_id": string,"payment_event_id": string | null,"reason": string,"serial": number,"sgst_cents": number,"taxable_cents": number,"total_cents": number
                  }
                  ComputedFields: never
                  Insert: {
                    "cgst_cents": number,"created_at"?: string,"credit_note_date": string,"credit_note_number": string,"currency": string,"exchange_rate"?: number | null,"financial_year": number,"id"?: string,"igst_cents": number,"inr_taxable_paise"?: number | null,"inr_total_paise"?: number | null,"invoice_id": string,"issued_at": string,"kind": Database["public"]['Enums']["credit_note_kind"],"organization_id": string,"payment_event_id"?: string | null,"reason": string,"serial": number,"sgst_cents": number,"taxable_cents": number,"total_cents": number
                  }
                  Update: {
                    "cgst_cents"?: number,"created_at"?: string,"credit_note_date"?: string,"credit_note_number"?: string,"currency"?: string,"exchange_rate"?: number | null,"financial_year"?: number,"id"?: string,"igst_cents"?: number,"inr_taxable_paise"?: number | null,"inr_total_paise"?: number | null,"invoice_id"?: string,"issued_at"?: string,"kind"?: Database["public"]['Enums']["credit_note_kind"],"organization_id"?: string,"payment_event_id"?: string | null,"reason"?: string,"serial"?: number,"sgst_cents"?: number,"taxable_cents"?: number,"total_cents"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "credit_notes_invoice_id_fkey"
      columns: ["invoice_id"]
isOneToOne: false
      referencedRelation: "invoices"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "credit_notes_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"credit_packs": {
                  Row: {
                    "active": boolean,"code": string,"created_at": string,"credits": number,"currency": string,"description": string | null,"id": string,"name": string,"price_paise": number,"updated_at": string,"validity": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "active"?: boolean,"code": string,"created_at"?: string,"credits": number,"currency"?: string,"description"?: string | null,"id"?: string,"name": string,"price_paise": number,"updated_at"?: string,"validity"?: string | null
                  }
                  Update: {
                    "active"?: boolean,"code"?: string,"created_at"?: string,"credits"?: number,"currency"?: string,"description"?: string | null,"id"?: string,"name"?: string,"price_paise"?: number,"updated_at"?: string,"validity"?: string | null
                  }
                  Relationships: [
                    
                  ]
                },"discount_redemptions": {
                  Row: {
                    "code": string,"created_at": string,"discount_code_id": string,"id": string,"order_id": string,"organization_id": string,"redeemed_at": string | null,"released_at": string | null,"status": Database["public"]['Enums']["discount_redemption_status"],"terms": NonNullable<Json>
                  }
                  ComputedFields: never
                  Insert: {
                    "code": string,"created_at"?: string,"discount_code_id": string,"id"?: string,"order_id": string,"organization_id": string,"redeemed_at"?: string | null,"released_at"?: string | null,"status"?: Database["public"]['Enums']["discount_redemption_status"],"terms": NonNullable<Json>
                  }
                  Update: {
                    "code"?: string,"created_at"?: string,"discount_code_id"?: string,"id"?: string,"order_id"?: string,"organization_id"?: string,"redeemed_at"?: string | null,"released_at"?: string | null,"status"?: Database["public"]['Enums']["discount_redemption_status"],"terms"?: NonNullable<Json>
                  }
                  Relationships: [
                    {
      foreignKeyName: "discount_redemptions_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"invoice_lines": {
                  Row: {
                    "cgst_cents": number,"cgst_rate_bp": number,"created_at": string,"credit_pack_id": string | null,"description": string,"discount_cents": number,"discount_code": string | null,"gst_rate_bp": number,"id": string,"igst_cents": number,"igst_rate_bp": number,"invoice_id": string,"line_number": number,"list_cents": number | null,"organization_id": string,"plan_id": string | null,"quantity": number,"sac_code": string,"sgst_cents": number,"sgst_rate_bp": number,"taxable_cents": number,"total_cents": number
                  }
                  ComputedFields: never
                  Insert: {
                    "cgst_cents": number,"cgst_rate_bp": number,"created_at"?: string,"credit_pack_id"?: string | null,"description": string,"discount_cents"?: number,"discount_code"?: string | null,"gst_rate_bp": number,"id"?: string,"igst_cents": number,"igst_rate_bp": number,"invoice_id": string,"line_number": number,"list_cents"?: number | null,"organization_id": string,"plan_id"?: string | null,"quantity"?: number,"sac_code": string,"sgst_cents": number,"sgst_rate_bp": number,"taxable_cents": number,"total_cents": number
                  }
                  Update: {
                    "cgst_cents"?: number,"cgst_rate_bp"?: number,"created_at"?: string,"credit_pack_id"?: string | null,"description"?: string,"discount_cents"?: number,"discount_code"?: string | null,"gst_rate_bp"?: number,"id"?: string,"igst_cents"?: number,"igst_rate_bp"?: number,"invoice_id"?: string,"line_number"?: number,"list_cents"?: number | null,"organization_id"?: string,"plan_id"?: string | null,"quantity"?: number,"sac_code"?: string,"sgst_cents"?: number,"sgst_rate_bp"?: number,"taxable_cents"?: number,"total_cents"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "invoice_lines_credit_pack_id_fkey"
      columns: ["credit_pack_id"]
isOneToOne: false
      referencedRelation: "credit_packs"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "invoice_lines_invoice_id_fkey"
      columns: ["invoice_id"]
isOneToOne: false
      referencedRelation: "invoices"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "invoice_lines_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "invoice_lines_plan_id_fkey"
      columns: ["plan_id"]
isOneToOne: false
      referencedRelation: "billing_plans"
      referencedColumns: ["id"]
    }
                  ]
                },"invoices": {
                  Row: {
                    "buyer": NonNullable<Json>,"buyer_gstin": string | null,"cgst_cents": number,"created_at": string,"currency": string,"exchange_rate": number | null,"exchange_rate_source": string | null,"export_with_igst": boolean,"financial_year": number,"id": string,"igst_cents": number,"inr_taxable_paise": number | null,"inr_total_paise": number | null,"invoice_date": string,"invoice_number": string,"issued_at": string,"lut_arn": string | null,"order_id": string,"organization_id": string,"payment_event_id": string | null,"place_of_supply_state_code": string | null,"prices_include_tax": boolean,"seller": NonNullable<Json>,"serial": number,"sgst_cents": number,"supply_type": Database["public"]['Enums']["supply_type"],"taxable_cents": number,"total_cents": number
                  }
                  ComputedFields: never
                  Insert: {
                    "buyer": NonNullable<Json>,"buyer_gstin"?: string | null,"cgst_cents": number,"created_at"?: string,"currency": string,"exchange_rate"?: number | null,"exchange_rate_source"?: string | null,"export_with_igst"?: boolean,"financial_year": number,"id"?: string,"igst_cents": number,"inr_taxable_paise"?: number | null,"inr_total_paise"?: number | null,"invoice_date": string,"invoice_number": string,"issued_at": string,"lut_arn"?: string | null,"order_id": string,"organization_id": string,"payment_event_id"?: string | null,"place_of_supply_state_code"?: string | null,"prices_include_tax": boolean,"seller": NonNullable<Json>,"serial": number,"sgst_cents": number,"supply_type": Database["public"]['Enums']["supply_type"],"taxable_cents": number,"total_cents": number
                  }
                  Update: {
                    "buyer"?: NonNullable<Json>,"buyer_gstin"?: string | null,"cgst_cents"?: number,"created_at"?: string,"currency"?: string,"exchange_rate"?: number | null,"exchange_rate_source"?: string | null,"export_with_igst"?: boolean,"financial_year"?: number,"id"?: string,"igst_cents"?: number,"inr_taxable_paise"?: number | null,"inr_total_paise"?: number | null,"invoice_date"?: string,"invoice_number"?: string,"issued_at"?: string,"lut_arn"?: string | null,"order_id"?: string,"organization_id"?: string,"payment_event_id"?: string | null,"place_of_supply_state_code"?: string | null,"prices_include_tax"?: boolean,"seller"?: NonNullable<Json>,"serial"?: number,"sgst_cents"?: number,"supply_type"?: Database["public"]['Enums']["supply_type"],"taxable_cents"?: number,"total_cents"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "invoices_order_id_fkey"
      columns: ["order_id"]
isOneToOne: true
      referencedRelation: "orders"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "invoices_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"notifications": {
                  Row: {
                    "attempts": number,"created_at": string,"dedupe_key": string,"failed_at": string | null,"id": string,"kind": Database["public"]['Enums']["notification_kind"],"last_error": string | null,"locked_until": string | null,"organization_id": string,"payload": NonNullable<Json>,"sent_at": string | null,"seq": number,"subscription_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "attempts"?: number,"created_at"?: string,"dedupe_key": string,"failed_at"?: string | null,"id"?: string,"kind": Database["public"]['Enums']["notification_kind"],"last_error"?: string | null,"locked_until"?: string | null,"organization_id": string,"payload"?: NonNullable<Json>,"sent_at"?: string | null,"seq"?: never,"subscription_id"?: string | null
                  }
                  Update: {
                    "attempts"?: number,"created_at"?: string,"dedupe_key"?: string,"failed_at"?: string | null,"id"?: string,"kind"?: Database["public"]['Enums']["notification_kind"],"last_error"?: string | null,"locked_until"?: string | null,"organization_id"?: string,"payload"?: NonNullable<Json>,"sent_at"?: string | null,"seq"?: never,"subscription_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "notifications_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "notifications_subscription_id_fkey"
      columns: ["subscription_id"]
isOneToOne: false
      referencedRelation: "subscriptions"
      referencedColumns: ["id"]
    }
                  ]
                },"orders": {
                  Row: {
                    "amount_cents": number,"created_at": string,"created_by": string | null,"credit_pack_id": string | null,"currency": string,"discount_cents": number,"discount_redemption_id": string | null,"exchange_rate": number | null,"expires_at": string | null,"export_with_igst": boolean,"gst_rate_bp": number | null,"id": string,"kind": Database["public"]['Enums']["order_kind"],"list_cents": number | null,"lut_arn": string | null,"metadata": NonNullable<Json>,"organization_id": string,"paid_at": string | null,"place_of_supply_state_code": string | null,"plan_id": string | null,"prices_include_tax": boolean | null,"provider": Database["public"]['Enums']["payment_provider"],"provider_order_id": string | null,"provider_subscription_id": string | null,"receipt": string,"status": Database["public"]['Enums']["order_status"],"subscription_id": string | null,"supply_type": Database["public"]['Enums']["supply_type"] | null,"taxable_cents": number | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "amount_cents": number,"created_at"?: string,"created_by"?: string | null,"credit_pack_id"?: string | null,"currency"?: string,"discount_cents"?: number,"discount_redemption_id"?: string | null,"exchange_rate"?: number | null,"expires_at"?: string | null,"export_with_igst"?: boolean,"gst_rate_bp"?: number | null,"id"?: string,"kind"?: Database["public"]['Enums']["order_kind"],"list_cents"?: number | null,"lut_arn"?: string | null,"metadata"?: NonNullable<Json>,"organization_id": string,"paid_at"?: string | null,"place_of_supply_state_code"?: string | null,"plan_id"?: string | null,"prices_include_tax"?: boolean | null,"provider": Database["public"]['Enums']["payment_provider"],"provider_order_id"?: string | null,"provider_subscription_id"?: string | null,"receipt"?: string,"status"?: Database["public"]['Enums']["order_status"],"subscription_id"?: string | null,"supply_type"?: Database["public"]['Enums']["supply_type"] | null,"taxable_cents"?: number | null,"updated_at"?: string
                  }
                  Update: {
                    "amount_cents"?: number,"created_at"?: string,"created_by"?: string | null,"credit_pack_id"?: string | null,"currency"?: string,"discount_cents"?: number,"discount_redemption_id"?: string | null,"exchange_rate"?: number | null,"expires_at"?: string | null,"export_with_igst"?: boolean,"gst_rate_bp"?: number | null,"id"?: string,"kind"?: Database["public"]['Enums']["order_kind"],"list_cents"?: number | null,"lut_arn"?: string | null,"metadata"?: NonNullable<Json>,"organization_id"?: string,"paid_at"?: string | null,"place_of_supply_state_code"?: string | null,"plan_id"?: string | null,"prices_include_tax"?: boolean | null,"provider"?: Database["public"]['Enums']["payment_provider"],"provider_order_id"?: string | null,"provider_subscription_id"?: string | null,"receipt"?: string,"status"?: Database["public"]['Enums']["order_status"],"subscription_id"?: string | null,"supply_type"?: Database["public"]['Enums']["supply_type"] | null,"taxable_cents"?: number | null,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "orders_credit_pack_id_fkey"
      columns: ["credit_pack_id"]
isOneToOne: false
      referencedRelation: "credit_packs"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "orders_discount_redemption_id_fkey"
      columns: ["discount_redemption_id"]
isOneToOne: false
      referencedRelation: "discount_redemptions"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "orders_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "orders_plan_id_fkey"
      columns: ["plan_id"]
isOneToOne: false
      referencedRelation: "billing_plans"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "orders_subscription_id_fkey"
      columns: ["subscription_id"]
isOneToOne: false
      referencedRelation: "subscriptions"
      referencedColumns: ["id"]
    }
                  ]
                },"organization_members": {
                  Row: {
                    "created_at": string,"organization_id": string,"role": Database["public"]['Enums']["member_role"],"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"organization_id": string,"role"?: Database["public"]['Enums']["member_role"],"user_id": string
                  }
                  Update: {
                    "created_at"?: string,"organization_id"?: string,"role"?: Database["public"]['Enums']["member_role"],"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "organization_members_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"organizations": {
                  Row: {
                    "billing_address_line1": string | null,"billing_address_line2": string | null,"billing_city": string | null,"billing_country": string,"billing_email": string | null,"billing_email_confirmed_at": string | null,"billing_name": string | null,"billing_postal_code": string | null,"created_at": string,"exports_verified": boolean,"gstin": string | null,"id": string,"name": string,"state_code": string | null,"timezone": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "billing_address_line1"?: string | null,"billing_address_line2"?: string | null,"billing_city"?: string | null,"billing_country"?: string,"billing_email"?: string | null,"billing_email_confirmed_at"?: string | null,"billing_name"?: string | null,"billing_postal_code"?: string | null,"created_at"?: string,"exports_verified"?: boolean,"gstin"?: string | null,"id"?: string,"name": string,"state_code"?: string | null,"timezone"?: string,"updated_at"?: string
                  }
                  Update: {
                    "billing_address_line1"?: string | null,"billing_address_line2"?: string | null,"billing_city"?: string | null,"billing_country"?: string,"billing_email"?: string | null,"billing_email_confirmed_at"?: string | null,"billing_name"?: string | null,"billing_postal_code"?: string | null,"created_at"?: string,"exports_verified"?: boolean,"gstin"?: string | null,"id"?: string,"name"?: string,"state_code"?: string | null,"timezone"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"payment_events": {
                  Row: {
                    "amount_cents": number,"created_at": string,"currency": string,"details": NonNullable<Json>,"error_reason": string | null,"id": string,"method": string | null,"needs_refund": boolean,"occurred_at": string,"order_id": string | null,"organization_id": string,"provider": Database["public"]['Enums']["payment_provider"],"provider_payment_id": string,"status": Database["public"]['Enums']["payment_status"]
                  }
                  ComputedFields: never
                  Insert: {
                    "amount_cents": number,"created_at"?: string,"currency": string,"details"?: NonNullable<Json>,"error_reason"?: string | null,"id"?: string,"method"?: string | null,"needs_refund"?: boolean,"occurred_at"?: string,"order_id"?: string | null,"organization_id": string,"provider": Database["public"]['Enums']["payment_provider"],"provider_payment_id": string,"status": Database["public"]['Enums']["payment_status"]
                  }
                  Update: {
                    "amount_cents"?: number,"created_at"?: string,"currency"?: string,"details"?: NonNullable<Json>,"error_reason"?: string | null,"id"?: string,"method"?: string | null,"needs_refund"?: boolean,"occurred_at"?: string,"order_id"?: string | null,"organization_id"?: string,"provider"?: Database["public"]['Enums']["payment_provider"],"provider_payment_id"?: string,"status"?: Database["public"]['Enums']["payment_status"]
                  }
                  Relationships: [
                    {
      foreignKeyName: "payment_events_order_id_fkey"
      columns: ["order_id"]
isOneToOne: false
      referencedRelation: "orders"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "payment_events_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"plan_assignments": {
                  Row: {
                    "contract_ref": string | null,"created_at": string,"ended_at": string | null,"id": string,"organization_id": string,"plan_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "contract_ref"?: string | null,"created_at"?: string,"ended_at"?: string | null,"id"?: string,"organization_id": string,"plan_id": string
                  }
                  Update: {
                    "contract_ref"?: string | null,"created_at"?: string,"ended_at"?: string | null,"id"?: string,"organization_id"?: string,"plan_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "plan_assignments_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "plan_assignments_plan_id_fkey"
      columns: ["plan_id"]
isOneToOne: false
      referencedRelation: "billing_plans"
      referencedColumns: ["id"]
    }
                  ]
                },"plan_prices": {
                  Row: {
                    "created_at": string,"currency": string,"plan_id": string,"price_cents": number,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"currency": string,"plan_id": string,"price_cents": number,"updated_at"?: string
                  }
                  Update: {
                    "created_at"?: string,"currency"?: string,"plan_id"?: string,"price_cents"?: number,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "plan_prices_plan_id_fkey"
      columns: ["plan_id"]
isOneToOne: false
      referencedRelation: "billing_plans"
      referencedColumns: ["id"]
    }
                  ]
                },"price_overrides": {
                  Row: {
                    "contract_ref": string,"created_at": string,"ended_at": string | null,"id": string,"organization_id": string,"plan_id": string,"price_paise": number,"valid_from": string,"valid_until": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "contract_ref": string,"created_at"?: string,"ended_at"?: string | null,"id"?: string,"organization_id": string,"plan_id": string,"price_paise": number,"valid_from": string,"valid_until"?: string | null
                  }
                  Update: {
                    "contract_ref"?: string,"created_at"?: string,"ended_at"?: string | null,"id"?: string,"organization_id"?: string,"plan_id"?: string,"price_paise"?: number,"valid_from"?: string,"valid_until"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "price_overrides_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "price_overrides_plan_id_fkey"
      columns: ["plan_id"]
isOneToOne: false
      referencedRelation: "billing_plans"
      referencedColumns: ["id"]
    }
                  ]
                },"subscription_history": {
                  Row: {
                    "action": string,"actor_id": string | null,"actor_kind": Database["public"]['Enums']["actor_kind"],"created_at": string,"effective_at": string,"id": string,"metadata": NonNullable<Json>,"new_plan_id": string | null,"new_status": Database["public"]['Enums']["subscription_status"] | null,"old_plan_id": string | null,"old_status": Database["public"]['Enums']["subscription_status"] | null,"organization_id": string,"reason": string | null,"subscription_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "action": string,"actor_id"?: string | null,"actor_kind"?: Database["public"]['Enums']["actor_kind"],"created_at"?: string,"effective_at"?: string,"id"?: string,"metadata"?: NonNullable<Json>,"new_plan_id"?: string | null,"new_status"?: Database["public"]['Enums']["subscription_status"] | null,"old_plan_id"?: string | null,"old_status"?: Database["public"]['Enums']["subscription_status"] | null,"organization_id": string,"reason"?: string | null,"subscription_id"?: string | null
                  }
                  Update: {
                    "action"?: string,"actor_id"?: string | null,"actor_kind"?: Database["public"]['Enums']["actor_kind"],"created_at"?: string,"effective_at"?: string,"id"?: string,"metadata"?: NonNullable<Json>,"new_plan_id"?: string | null,"new_status"?: Database["public"]['Enums']["subscription_status"] | null,"old_plan_id"?: string | null,"old_status"?: Database["public"]['Enums']["subscription_status"] | null,"organization_id"?: string,"reason"?: string | null,"subscription_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "subscription_history_new_plan_id_fkey"
      columns: ["new_plan_id"]
isOneToOne: false
      referencedRelation: "billing_plans"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "subscription_history_old_plan_id_fkey"
      columns: ["old_plan_id"]
isOneToOne: false
      referencedRelation: "billing_plans"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "subscription_history_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "subscription_history_subscription_id_fkey"
      columns: ["subscription_id"]
isOneToOne: false
      referencedRelation: "subscriptions"
      referencedColumns: ["id"]
    }
                  ]
                },"subscriptions": {
                  Row: {
                    "cancel_at_period_end": boolean,"canceled_at": string | null,"created_at": string,"current_period_end": string | null,"current_period_start": string | null,"ended_at": string | null,"id": string,"organization_id": string,"pending_plan_effective_at": string | null,"pending_plan_id": string | null,"period_anchor": string | null,"plan_id": string,"provider": Database["public"]['Enums']["payment_provider"] | null,"provider_subscription_id": string | null,"status": Database["public"]['Enums']["subscription_status"],"trial_end": string | null,"updated_at": string,"billing_plans": {
              "active": boolean,
"code": string,
"created_at": string,
"currency": string,
"description": string | null,
"features": NonNullable<Json>,
"id": string,
"interval": Database["public"]['Enums']["billing_interval"],
"name": string,
"price_cents": number,
"private": boolean,
"provider_config": NonNullable<Json>,
"tier": Database["public"]['Enums']["plan_tier"],
"trial_days": number,
"updated_at": string
            } | null,"pending_plan": {
              "active": boolean,
"code": string,
"created_at": string,
"currency": string,
"description": string | null,
"features": NonNullable<Json>,
"id": string,
"interval": Database["public"]['Enums']["billing_interval"],
"name": string,
"price_cents": number,
"private": boolean,
"provider_config": NonNullable<Json>,
"tier": Database["public"]['Enums']["plan_tier"],
"trial_days": number,
"updated_at": string
            } | null
                  }
                  ComputedFields: "billing_plans" | "pending_plan"
                  Insert: {
                    "cancel_at_period_end"?: boolean,"canceled_at"?: string | null,"created_at"?: string,"current_period_end"?: string | null,"current_period_start"?: string | null,"ended_at"?: string | null,"id"?: string,"organization_id": string,"pending_plan_effective_at"?: string | null,"pending_plan_id"?: string | null,"period_anchor"?: string | null,"plan_id": string,"provider"?: Database["public"]['Enums']["payment_provider"] | null,"provider_subscription_id"?: string | null,"status"?: Database["public"]['Enums']["subscription_status"],"trial_end"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "cancel_at_period_end"?: boolean,"canceled_at"?: string | null,"created_at"?: string,"current_period_end"?: string | null,"current_period_start"?: string | null,"ended_at"?: string | null,"id"?: string,"organization_id"?: string,"pending_plan_effective_at"?: string | null,"pending_plan_id"?: string | null,"period_anchor"?: string | null,"plan_id"?: string,"provider"?: Database["public"]['Enums']["payment_provider"] | null,"provider_subscription_id"?: string | null,"status"?: Database["public"]['Enums']["subscription_status"],"trial_end"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "subscriptions_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "subscriptions_pending_plan_id_fkey"
      columns: ["pending_plan_id"]
isOneToOne: false
      referencedRelation: "billing_plans"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "subscriptions_plan_id_fkey"
      columns: ["plan_id"]
isOneToOne: false
      referencedRelation: "billing_plans"
      referencedColumns: ["id"]
    }
                  ]
                },"usage_metric_catalog": {
                  Row: {
                    "created_at": string,"display_name": string,"metric": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"display_name": string,"metric": string
                  }
                  Update: {
                    "created_at"?: string,"display_name"?: string,"metric"?: string
                  }
                  Relationships: [
                    
                  ]
                },"usage_metrics": {
                  Row: {
                    "amount": number,"claimed_month": string,"created_at": string,"credit_request_id": string | null,"credit_units": number | null,"id": string,"limit_amount": number | null,"metadata": NonNullable<Json>,"metric": string,"occurred_at": string,"organization_id": string,"request_id": string | null,"resets_at": string | null,"state": Database["public"]['Enums']["usage_state"],"used": number | null,"user_id": string | null,"window_units": (Database["public"]['Enums']["usage_window"])[]
                  }
                  ComputedFields: never
                  Insert: {
                    "amount": number,"claimed_month"?: string,"created_at"?: string,"credit_request_id"?: string | null,"credit_units"?: number | null,"id"?: string,"limit_amount"?: number | null,"metadata"?: NonNullable<Json>,"metric": string,"occurred_at"?: string,"organization_id": string,"request_id"?: string | null,"resets_at"?: string | null,"state"?: Database["public"]['Enums']["usage_state"],"used"?: number | null,"user_id"?: string | null,"window_units"?: (Database["public"]['Enums']["usage_window"])[]
                  }
                  Update: {
                    "amount"?: number,"claimed_month"?: string,"created_at"?: string,"credit_request_id"?: string | null,"credit_units"?: number | null,"id"?: string,"limit_amount"?: number | null,"metadata"?: NonNullable<Json>,"metric"?: string,"occurred_at"?: string,"organization_id"?: string,"request_id"?: string | null,"resets_at"?: string | null,"state"?: Database["public"]['Enums']["usage_state"],"used"?: number | null,"user_id"?: string | null,"window_units"?: (Database["public"]['Enums']["usage_window"])[]
                  }
                  Relationships: [
                    
                  ]
                },"usage_quotas": {
                  Row: {
                    "count": number,"created_at": string,"metric": string,"organization_id": string,"updated_at": string,"window_start": string,"window_unit": Database["public"]['Enums']["usage_window"]
                  }
                  ComputedFields: never
                  Insert: {
                    "count"?: number,"created_at"?: string,"metric": string,"organization_id": string,"updated_at"?: string,"window_start": string,"window_unit": Database["public"]['Enums']["usage_window"]
                  }
                  Update: {
                    "count"?: number,"created_at"?: string,"metric"?: string,"organization_id"?: string,"updated_at"?: string,"window_start"?: string,"window_unit"?: Database["public"]['Enums']["usage_window"]
                  }
                  Relationships: [
                    {
      foreignKeyName: "usage_quotas_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"watchlists": {
                  Row: {
                    "created_at": string,"created_by": string | null,"id": string,"name": string,"organization_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"id"?: string,"name": string,"organization_id": string
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"id"?: string,"name"?: string,"organization_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "watchlists_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                }
          }
          Views: {
            "organization_entitlements": {
                  Row: {
                    "current_period_end": string | null,"features": Json | null,"grace_ends_at": string | null,"in_grace": boolean | null,"organization_id": string | null,"plan_code": string | null,"reason": string | null,"status": string | null,"tier": string | null
                  }
                  ComputedFields: never
                  Relationships: [
                    
                  ]
                }
          }
          Functions: {
            "add_organization_member":
{ Args: { "p_organization_id": string,"p_role"?: Database["public"]['Enums']["member_role"],"p_user_id": string }; Returns: undefined
                           },
"billing_plans":
{ Args: { "p_subscription": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']> }; Returns: {
              "active": boolean,
"code": string,
"created_at": string,
"currency": string,
"description": string | null,
"features": NonNullable<Json>,
"id": string,
"interval": Database["public"]['Enums']["billing_interval"],
"name": string,
"price_cents": number,
"private": boolean,
"provider_config": NonNullable<Json>,
"tier": Database["public"]['Enums']["plan_tier"],
"trial_days": number,
"updated_at": string
            }
                          SetofOptions: {
        from: "subscriptions"
        to: "billing_plans"
        isOneToOne: true
        isSetofReturn: true
      } },
"cancel_subscription":
{ Args: { "p_at_period_end"?: boolean,"p_organization_id": string }; Returns: Json
                           },
"change_plan":
{ Args: { "p_discount_code"?: string,"p_organization_id": string,"p_plan_code": string }; Returns: Json
                           },
"confirm_billing_email":
{ Args: { "p_token": string }; Returns: Json
                           },
"consume_credits":
{ Args: { "p_event": string,"p_organization_id": string,"p_quantity"?: number,"p_request_id"?: string }; Returns: Record<string, unknown>
                           },
"create_checkout_order":
{ Args: { "p_currency"?: string,"p_discount_code"?: string,"p_organization_id": string,"p_plan_code": string,"p_provider": string }; Returns: Database["billing"]['CompositeTypes']["checkout_order"][]
                          SetofOptions: {
        from: "*"
        to: "checkout_order"
        isOneToOne: false
        isSetofReturn: true
      } },
"create_credit_pack_order":
{ Args: { "p_credit_pack_code": string,"p_organization_id": string,"p_provider": string }; Returns: Database["billing"]['CompositeTypes']["checkout_order"][]
                          SetofOptions: {
        from: "*"
        to: "checkout_order"
        isOneToOne: false
        isSetofReturn: true
      } },
"create_organization":
{ Args: { "p_name": string }; Returns: string
                           },
"credit_note_document":
{ Args: { "p_credit_note_id": string }; Returns: Json
                           },
"effective_tier":
{ Args: { "p_organization_id": string }; Returns: string
                           },
"get_ai_batch":
{ Args: { "p_batch_id": string }; Returns: Json
                           },
"get_billing_portal_customer":
{ Args: { "p_organization_id": string,"p_provider": string }; Returns: string
                           },
"get_credit_balance":
{ Args: { "p_organization_id": string }; Returns: Json
                           },
"get_entitlements":
{ Args: { "p_organization_id": string }; Returns: Json
                           },
"get_provider_actions":
{ Args: { "p_organization_id": string }; Returns: {
              "attempts": number,"completed_at": string,"created_at": string,"id": string,"kind": string,"last_error": string,"next_attempt_at": string,"provider": Database["public"]['Enums']["payment_provider"],"reason": string,"state": string
            }[]
                           },
"get_usage":
{ Args: { "p_organization_id": string }; Returns: {
              "limit_amount": number,"metric": string,"percent": number,"remaining": number,"resets_at": string,"scope": string,"used": number,"window_start": string,"window_unit": Database["public"]['Enums']["usage_window"]
            }[]
                           },
"increment_usage":
{ Args: { "p_amount"?: number,"p_metric": string,"p_organization_id": string,"p_request_id"?: string }; Returns: Record<string, unknown>
                           },
"invoice_document":
{ Args: { "p_invoice_id": string }; Returns: Json
                           },
"is_valid_gstin":
{ Args: { "p_gstin": string }; Returns: boolean
                           },
"pending_plan":
{ Args: { "p_subscription": Omit<Database["public"]['Tables']["subscriptions"]['Row'], Database["public"]['Tables']["subscriptions"]['ComputedFields']> }; Returns: {
              "active": boolean,
"code": string,
"created_at": string,
"currency": string,
"description": string | null,
"features": NonNullable<Json>,
"id": string,
"interval": Database["public"]['Enums']["billing_interval"],
"name": string,
"price_cents": number,
"private": boolean,
"provider_config": NonNullable<Json>,
"tier": Database["public"]['Enums']["plan_tier"],
"trial_days": number,
"updated_at": string
            }
                          SetofOptions: {
        from: "subscriptions"
        to: "billing_plans"
        isOneToOne: true
        isSetofReturn: true
      } },
"prepare_order_checkout":
{ Args: { "p_order_id": string,"p_organization_id": string,"p_provider": string }; Returns: Database["billing"]['CompositeTypes']["checkout_order"][]
                          SetofOptions: {
        from: "*"
        to: "checkout_order"
        isOneToOne: false
        isSetofReturn: true
      } },
"preview_checkout":
{ Args: { "p_currency"?: string,"p_discount_code"?: string,"p_organization_id": string,"p_plan_code": string,"p_provider"?: string }; Returns: Json
                           },
"preview_plan_change":
{ Args: { "p_discount_code"?: string,"p_organization_id": string,"p_plan_code": string }; Returns: Json
                           },
"release_credits":
{ Args: { "p_organization_id": string,"p_request_id": string }; Returns: Record<string, unknown>
                           },
"remove_organization_member":
{ Args: { "p_organization_id": string,"p_user_id": string }; Returns: undefined
                           },
"resume_subscription":
{ Args: { "p_organization_id": string }; Returns: Json
                           },
"set_member_role":
{ Args: { "p_organization_id": string,"p_role": Database["public"]['Enums']["member_role"],"p_user_id": string }; Returns: undefined
                           },
"start_trial":
{ Args: { "p_organization_id": string,"p_plan_code": string }; Returns: Json
                           },
"submit_ai_batch":
{ Args: { "p_organization_id": string,"p_requests": Json }; Returns: string
                           },
"tax_document":
{ Args: { "p_document_id": string }; Returns: Json
                           },
"update_billing_profile":
{ Args: { "p_address_line1"?: string,"p_address_line2"?: string,"p_billing_email"?: string,"p_billing_name": string,"p_city"?: string,"p_country"?: string,"p_gstin"?: string,"p_organization_id": string,"p_postal_code"?: string,"p_state_code"?: string }; Returns: {
              "billing_address_line1": string | null,
"billing_address_line2": string | null,
"billing_city": string | null,
"billing_country": string,
"billing_email": string | null,
"billing_email_confirmed_at": string | null,
"billing_name": string | null,
"billing_postal_code": string | null,
"created_at": string,
"exports_verified": boolean,
"gstin": string | null,
"id": string,
"name": string,
"state_code": string | null,
"timezone": string,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "organizations"
        isOneToOne: true
        isSetofReturn: false
      } }
          }
          Enums: {
            "actor_kind": "user"|"system"|"provider"|"operator"|"sql","ai_batch_request_state": "reserved"|"settled"|"failed"|"released","ai_batch_state": "queued"|"uploading"|"submitted"|"completed"|"released","ai_request_status": "pending"|"completed"|"cached"|"denied"|"upstream_error"|"upstream_timeout"|"client_closed"|"expired","billing_interval": "month"|"year","credit_movement": "granted"|"consumed"|"released"|"expired"|"revoked","credit_note_kind": "refund"|"void","credit_source": "purchase"|"subscription"|"promotion"|"operator","discount_duration": "once"|"repeating"|"forever","discount_redemption_status": "reserved"|"redeemed"|"released","document_series": "invoice"|"credit_note","member_role": "owner"|"admin"|"member","notification_kind": "renewal_reminder"|"pre_debit_notice"|"dunning_reminder"|"payment_failed"|"subscription_canceled"|"subscription_expired"|"trial_ended"|"plan_downgraded"|"subscription_refunded"|"subscription_disputed"|"payment_disputed"|"payment_captured"|"trial_ending"|"cancellation_scheduled"|"quota_threshold"|"provider_action_failed"|"credits_low"|"billing_email_confirmation"|"ai_batch_completed","order_kind": "new"|"renewal"|"upgrade"|"credit_pack","order_status": "created"|"pending"|"paid"|"failed"|"expired"|"canceled","payment_provider": "payu"|"razorpay"|"manual"|"stripe","payment_status": "authorized"|"captured"|"failed"|"refunded"|"mismatch"|"dispute_opened"|"dispute_won"|"dispute_lost","plan_tier": "free"|"basic"|"pro"|"enterprise","subscription_status": "pending_payment"|"trialing"|"active"|"past_due"|"canceled"|"expired","supply_type": "intra_state"|"inter_state"|"export","usage_state": "counted"|"settled"|"released","usage_window": "minute"|"hour"|"day"|"month"
          }
          CompositeTypes: {
            [_ in never]: never
          }
        }
}

type DatabaseWithoutInternals = Omit<Database, '__InternalSupabase'>

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, "public">]

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
        DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
      DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])[TableName] extends {
      Row: infer R
    }
    ? R
    : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
  ? (DefaultSchema["Tables"] & DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
      Row: infer R
    }
    ? R
    : never
  : never

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Insert: infer I
    }
    ? I
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
  ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Insert: infer I
    }
    ? I
    : never
  : never

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Update: infer U
    }
    ? U
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
  ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Update: infer U
    }
    ? U
    : never
  : never

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never = never
> = DefaultSchemaEnumNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
  ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
  : never

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never = never
> = PublicCompositeTypeNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][CompositeTypeName]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
  ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
  : never

export const Constants = {
  "billing": {
          Enums: {
            "provider_action_kind": ["cancel", "pause", "resume", "change_plan", "refund", "fetch_payment"],"provider_action_state": ["pending", "running", "succeeded", "failed"],"provider_event_kind": ["payment_captured", "payment_failed", "payment_authorized", "payment_pending", "refund_processed", "subscription_status", "other", "dispute_opened", "dispute_won", "dispute_lost", "refund_failed"]
          }
        },"public": {
          Enums: {
            "actor_kind": ["user", "system", "provider", "operator", "sql"],"ai_batch_request_state": ["reserved", "settled", "failed", "released"],"ai_batch_state": ["queued", "uploading", "submitted", "completed", "released"],"ai_request_status": ["pending", "completed", "cached", "denied", "upstream_error", "upstream_timeout", "client_closed", "expired"],"billing_interval": ["month", "year"],"credit_movement": ["granted", "consumed", "released", "expired", "revoked"],"credit_note_kind": ["refund", "void"],"credit_source": ["purchase", "subscription", "promotion", "operator"],"discount_duration": ["once", "repeating", "forever"],"discount_redemption_status": ["reserved", "redeemed", "released"],"document_series": ["invoice", "credit_note"],"member_role": ["owner", "admin", "member"],"notification_kind": ["renewal_reminder", "pre_debit_notice", "dunning_reminder", "payment_failed", "subscription_canceled", "subscription_expired", "trial_ended", "plan_downgraded", "subscription_refunded", "subscription_disputed", "payment_disputed", "payment_captured", "trial_ending", "cancellation_scheduled", "quota_threshold", "provider_action_failed", "credits_low", "billing_email_confirmation", "ai_batch_completed"],"order_kind": ["new", "renewal", "upgrade", "credit_pack"],"order_status": ["created", "pending", "paid", "failed", "expired", "canceled"],"payment_provider": ["payu", "razorpay", "manual", "stripe"],"payment_status": ["authorized", "captured", "failed", "refunded", "mismatch", "dispute_opened", "dispute_won", "dispute_lost"],"plan_tier": ["free", "basic", "pro", "enterprise"],"subscription_status": ["pending_payment", "trialing", "active", "past_due", "canceled", "expired"],"supply_type": ["intra_state", "inter_state", "export"],"usage_state": ["counted", "settled", "released"],"usage_window": ["minute", "hour", "day", "month"]
          }
        }
} as const
