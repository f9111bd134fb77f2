
export type Json = string | number | boolean | null | { [key: string]: Json | undefined } | Json[]

export type Database = {
  
  "public": {
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
                    {
      foreignKeyName: "ai_cache_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"ai_requests": {
                  Row: {
                    "cache_key": string | null,"cached": boolean,"completed_at": string | null,"completion_tokens": number | null,"counted_tokens": number | null,"created_at": string,"error_code": string | null,"expires_at": string | null,"id": string,"latency_ms": number | null,"max_tokens": number | null,"model": string,"organization_id": string,"prompt_tokens": number | null,"request_id": string,"reserved_tokens": number,"status": Database["public"]['Enums']["ai_request_status"],"stream": boolean,"user_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "cache_key"?: string | null,"cached"?: boolean,"completed_at"?: string | null,"completion_tokens"?: number | null,"counted_tokens"?: number | null,"created_at"?: string,"error_code"?: string | null,"expires_at"?: string | null,"id"?: string,"latency_ms"?: number | null,"max_tokens"?: number | null,"model": string,"organization_id": string,"prompt_tokens"?: number | null,"request_id": string,"reserved_tokens"?: number,"status": Database["public"]['Enums']["ai_request_status"],"stream"?: boolean,"user_id"?: string | null
                  }
                  Update: {
                    "cache_key"?: string | null,"cached"?: boolean,"completed_at"?: string | null,"completion_tokens"?: number | null,"counted_tokens"?: number | null,"created_at"?: string,"error_code"?: string | null,"expires_at"?: string | null,"id"?: string,"latency_ms"?: number | null,"max_tokens"?: number | null,"model"?: string,"organization_id"?: string,"prompt_tokens"?: number | null,"request_id"?: string,"reserved_tokens"?: number,"status"?: Database["public"]['Enums']["ai_request_status"],"stream"?: boolean,"user_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "ai_requests_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"billing_plans": {
                  Row: {
                    "active": boolean,"code": string,"created_at": string,"currency": string,"description": string | null,"features": NonNullable<Json>,"id": string,"interval": Database["public"]['Enums']["billing_interval"],"name": string,"price_cents": number,"provider_config": NonNullable<Json>,"tier": string,"trial_days": number,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "active"?: boolean,"code": string,"created_at"?: string,"currency"?: string,"description"?: string | null,"features"?: NonNullable<Json>,"id"?: string,"interval"?: Database["public"]['Enums']["billing_interval"],"name": string,"price_cents": number,"provider_config"?: NonNullable<Json>,"tier": string,"trial_days"?: number,"updated_at"?: string
                  }
                  Update: {
                    "active"?: boolean,"code"?: string,"created_at"?: string,"currency"?: string,"description"?: string | null,"features"?: NonNullable<Json>,"id"?: string,"interval"?: Database["public"]['Enums']["billing_interval"],"name"?: string,"price_cents"?: number,"provider_config"?: NonNullable<Json>,"tier"?: string,"trial_days"?: number,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"billing_settings": {
                  Row: {
                    "app_failure_url": string | null,"app_success_url": string | null,"created_at": string,"credit_note_prefix": string,"default_currency": string,"default_timezone": string,"grace_days": number,"gst_rate_bp": number,"id": boolean,"invoice_prefix": string,"order_pending_reconcile_after": string,"prices_include_tax": boolean,"sac_code": string,"seller_address_line1": string | null,"seller_address_line2": string | null,"seller_city": string | null,"seller_email": string | null,"seller_gstin": string | null,"seller_legal_name": string | null,"seller_postal_code": string | null,"seller_state_code": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "app_failure_url"?: string | null,"app_success_url"?: string | null,"created_at"?: string,"credit_note_prefix"?: string,"default_currency"?: string,"default_timezone"?: string,"grace_days"?: number,"gst_rate_bp"?: number,"id"?: boolean,"invoice_prefix"?: string,"order_pending_reconcile_after"?: string,"prices_include_tax"?: boolean,"sac_code"?: string,"seller_address_line1"?: string | null,"seller_address_line2"?: string | null,"seller_city"?: string | null,"seller_email"?: string | null,"seller_gstin"?: string | null,"seller_legal_name"?: string | null,"seller_postal_code"?: string | null,"seller_state_code"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "app_failure_url"?: string | null,"app_success_url"?: string | null,"created_at"?: string,"credit_note_prefix"?: string,"default_currency"?: string,"default_timezone"?: string,"grace_days"?: number,"gst_rate_bp"?: number,"id"?: boolean,"invoice_prefix"?: string,"order_pending_reconcile_after"?: string,"prices_include_tax"?: boolean,"sac_code"?: string,"seller_address_line1"?: string | null,"seller_address_line2"?: string | null,"seller_city"?: string | null,"seller_email"?: string | null,"seller_gstin"?: string | null,"seller_legal_name"?: string | null,"seller_postal_code"?: string | null,"seller_state_code"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"credit_notes": {
                  Row: {
                    "cgst_cents": number,"created_at": string,"credit_note_date": string,"credit_note_number": string,"currency": string,"financial_year": number,"id": string,"igst_cents": number,"invoice_id": string,"issued_at": string,"kind": string,"organization_id": string,"payment_event_id": string | null,"reason": string,"serial": number,"sgst_cents": number,"taxable_cents": number,"total_cents": number
                  }
                  ComputedFields: never
                  Insert: {
                    "cgst_cents": number,"created_at"?: string,"credit_note_date": string,"credit_note_number": string,"currency": string,"financial_year": number,"id"?: string,"igst_cents": number,"invoice_id": string,"issued_at": string,"kind": string,"organization_id": string,"payment_event_id"?: string | null,"reason": string,"serial": number,"sgst_cents": number,"taxable_cents": number,"total_cents": number
                  }
                  Update: {
                    "cgst_cents"?: number,"created_at"?: string,"credit_note_date"?: string,"credit_note_number"?: string,"currency"?: string,"financial_year"?: number,"id"?: string,"igst_cents"?: number,"invoice_id"?: string,"issued_at"?: string,"kind"?: string,"organization_id"?: string,"payment_event_id"?: string | null,"reason"?: string,"serial"?: number,"sgst_cents"?: number,"taxable_cents"?: number,"total_cents"?: number
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
                },"invoice_lines": {
                  Row: {
                    "cgst_cents": number,"cgst_rate_bp": number,"created_at": string,"description": string,"gst_rate_bp": number,"id": string,"igst_cents": number,"igst_rate_bp": number,"invoice_id": string,"line_number": number,"organization_id": string,"plan_id": string | null,"quantity": number,"sac_code": string,"sgst_cents": number,"sgst_rate_bp": number,"taxable_cents": number,"total_cents": number
                  }
                  ComputedFields: never
                  Insert: {
                    "cgst_cents": number,"cgst_rate_bp": number,"created_at"?: string,"description": string,"gst_rate_bp": number,"id"?: string,"igst_cents": number,"igst_rate_bp": number,"invoice_id": string,"line_number": number,"organization_id": string,"plan_id"?: string | null,"quantity"?: number,"sac_code": string,"sgst_cents": number,"sgst_rate_bp": number,"taxable_cents": number,"total_cents": number
                  }
                  Update: {
                    "cgst_cents"?: number,"cgst_rate_bp"?: number,"created_at"?: string,"description"?: string,"gst_rate_bp"?: number,"id"?: string,"igst_cents"?: number,"igst_rate_bp"?: number,"invoice_id"?: string,"line_number"?: number,"organization_id"?: string,"plan_id"?: string | null,"quantity"?: number,"sac_code"?: string,"sgst_cents"?: number,"sgst_rate_bp"?: number,"taxable_cents"?: number,"total_cents"?: number
                  }
                  Relationships: [
                    {
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
                    "buyer": NonNullable<Json>,"buyer_gstin": string | null,"cgst_cents": number,"created_at": string,"currency": string,"financial_year": number,"id": string,"igst_cents": number,"invoice_date": string,"invoice_number": string,"issued_at": string,"order_id": string,"organization_id": string,"payment_event_id": string | null,"place_of_supply_state_code": string | null,"prices_include_tax": boolean,"seller": NonNullable<Json>,"serial": number,"sgst_cents": number,"supply_type": string,"taxable_cents": number,"total_cents": number
                  }
                  ComputedFields: never
                  Insert: {
                    "buyer": NonNullable<Json>,"buyer_gstin"?: string | null,"cgst_cents": number,"created_at"?: string,"currency": string,"financial_year": number,"id"?: string,"igst_cents": number,"invoice_date": string,"invoice_number": string,"issued_at": string,"order_id": string,"organization_id": string,"payment_event_id"?: string | null,"place_of_supply_state_code"?: string | null,"prices_include_tax": boolean,"seller": NonNullable<Json>,"serial": number,"sgst_cents": number,"supply_type": string,"taxable_cents": number,"total_cents": number
                  }
                  Update: {
                    "buyer"?: NonNullable<Json>,"buyer_gstin"?: string | null,"cgst_cents"?: number,"created_at"?: string,"currency"?: string,"financial_year"?: number,"id"?: string,"igst_cents"?: number,"invoice_date"?: string,"invoice_number"?: string,"issued_at"?: string,"order_id"?: string,"organization_id"?: string,"payment_event_id"?: string | null,"place_of_supply_state_code"?: string | null,"prices_include_tax"?: boolean,"seller"?: NonNullable<Json>,"serial"?: number,"sgst_cents"?: number,"supply_type"?: string,"taxable_cents"?: number,"total_cents"?: number
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
                    "attempts": number,"created_at": string,"dedupe_key": string,"id": string,"kind": string,"last_error": string | null,"locked_until": string | null,"organization_id": string,"payload": NonNullable<Json>,"sent_at": string | null,"subscription_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "attempts"?: number,"created_at"?: string,"dedupe_key": string,"id"?: string,"kind": string,"last_error"?: string | null,"locked_until"?: string | null,"organization_id": string,"payload"?: NonNullable<Json>,"sent_at"?: string | null,"subscription_id"?: string | null
                  }
                  Update: {
                    "attempts"?: number,"created_at"?: string,"dedupe_key"?: string,"id"?: string,"kind"?: string,"last_error"?: string | null,"locked_until"?: string | null,"organization_id"?: string,"payload"?: NonNullable<Json>,"sent_at"?: string | null,"subscription_id"?: string | null
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
                    "amount_cents": number,"created_at": string,"created_by": string | null,"currency": string,"expires_at": string | null,"gst_rate_bp": number | null,"id": string,"kind": string,"metadata": NonNullable<Json>,"organization_id": string,"paid_at": string | null,"place_of_supply_state_code": string | null,"plan_id": string,"prices_include_tax": boolean | null,"provider": string,"provider_order_id": string | null,"provider_subscription_id": string | null,"receipt": string,"status": string,"subscription_id": string | null,"supply_type": string | null,"taxable_cents": number | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "amount_cents": number,"created_at"?: string,"created_by"?: string | null,"currency"?: string,"expires_at"?: string | null,"gst_rate_bp"?: number | null,"id"?: string,"kind"?: string,"metadata"?: NonNullable<Json>,"organization_id": string,"paid_at"?: string | null,"place_of_supply_state_code"?: string | null,"plan_id": string,"prices_include_tax"?: boolean | null,"provider": string,"provider_order_id"?: string | null,"provider_subscription_id"?: string | null,"receipt"?: string,"status"?: string,"subscription_id"?: string | null,"supply_type"?: string | null,"taxable_cents"?: number | null,"updated_at"?: string
                  }
                  Update: {
                    "amount_cents"?: number,"created_at"?: string,"created_by"?: string | null,"currency"?: string,"expires_at"?: string | null,"gst_rate_bp"?: number | null,"id"?: string,"kind"?: string,"metadata"?: NonNullable<Json>,"organization_id"?: string,"paid_at"?: string | null,"place_of_supply_state_code"?: string | null,"plan_id"?: string,"prices_include_tax"?: boolean | null,"provider"?: string,"provider_order_id"?: string | null,"provider_subscription_id"?: string | null,"receipt"?: string,"status"?: string,"subscription_id"?: string | null,"supply_type"?: string | null,"taxable_cents"?: number | null,"updated_at"?: string
                  }
                  Relationships: [
                    {
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
                    "billing_address_line1": string | null,"billing_address_line2": string | null,"billing_city": string | null,"billing_country": string,"billing_email": string | null,"billing_name": string | null,"billing_postal_code": string | null,"created_at": string,"gstin": string | null,"id": string,"name": string,"state_code": string | null,"timezone": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "billing_address_line1"?: string | null,"billing_address_line2"?: string | null,"billing_city"?: string | null,"billing_country"?: string,"billing_email"?: string | null,"billing_name"?: string | null,"billing_postal_code"?: string | null,"created_at"?: string,"gstin"?: string | null,"id"?: string,"name": string,"state_code"?: string | null,"timezone"?: string,"updated_at"?: string
                  }
                  Update: {
                    "billing_address_line1"?: string | null,"billing_address_line2"?: string | null,"billing_city"?: string | null,"billing_country"?: string,"billing_email"?: string | null,"billing_name"?: string | null,"billing_postal_code"?: string | null,"created_at"?: string,"gstin"?: string | null,"id"?: string,"name"?: string,"state_code"?: string | null,"timezone"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"payment_events": {
                  Row: {
                    "amount_cents": number,"created_at": string,"currency": string,"details": NonNullable<Json>,"error_reason": string | null,"id": string,"method": string | null,"occurred_at": string,"order_id": string | null,"organization_id": string,"provider": string,"provider_payment_id": string,"status": string
                  }
                  ComputedFields: never
                  Insert: {
                    "amount_cents": number,"created_at"?: string,"currency": string,"details"?: NonNullable<Json>,"error_reason"?: string | null,"id"?: string,"method"?: string | null,"occurred_at"?: string,"order_id"?: string | null,"organization_id": string,"provider": string,"provider_payment_id": string,"status": string
                  }
                  Update: {
                    "amount_cents"?: number,"created_at"?: string,"currency"?: string,"details"?: NonNullable<Json>,"error_reason"?: string | null,"id"?: string,"method"?: string | null,"occurred_at"?: string,"order_id"?: string | null,"organization_id"?: string,"provider"?: string,"provider_payment_id"?: string,"status"?: string
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
                },"subscription_history": {
                  Row: {
                    "action": string,"actor_id": string | null,"actor_kind": string,"created_at": string,"effective_at": string,"id": string,"metadata": NonNullable<Json>,"new_plan_id": string | null,"new_status": Database["public"]['Enums']["subscription_status"] | null,"old_plan_id": string | null,"old_status": Database["public"]['Enums']["subscription_status"] | null,"organization_id": string,"reason": string | null,"subscription_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "action": string,"actor_id"?: string | null,"actor_kind"?: string,"created_at"?: string,"effective_at"?: string,"id"?: string,"metadata"?: NonNullable<Json>,"new_plan_id"?: string | null,"new_status"?: Database["public"]['Enums']["subscription_status"] | null,"old_plan_id"?: string | null,"old_status"?: Database["public"]['Enums']["subscription_status"] | null,"organization_id": string,"reason"?: string | null,"subscription_id"?: string | null
                  }
                  Update: {
                    "action"?: string,"actor_id"?: string | null,"actor_kind"?: string,"created_at"?: string,"effective_at"?: string,"id"?: string,"metadata"?: NonNullable<Json>,"new_plan_id"?: string | null,"new_status"?: Database["public"]['Enums']["subscription_status"] | null,"old_plan_id"?: string | null,"old_status"?: Database["public"]['Enums']["subscription_status"] | null,"organization_id"?: string,"reason"?: string | null,"subscription_id"?: string | null
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
                    "cancel_at_period_end": boolean,"canceled_at": string | null,"created_at": string,"current_period_end": string | null,"current_period_start": string | null,"ended_at": string | null,"id": string,"organization_id": string,"pending_plan_effective_at": string | null,"pending_plan_id": string | null,"plan_id": string,"provider": string | null,"provider_subscription_id": string | null,"status": Database["public"]['Enums']["subscription_status"],"trial_end": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "cancel_at_period_end"?: boolean,"canceled_at"?: string | null,"created_at"?: string,"current_period_end"?: string | null,"current_period_start"?: string | null,"ended_at"?: string | null,"id"?: string,"organization_id": string,"pending_plan_effective_at"?: string | null,"pending_plan_id"?: string | null,"plan_id": string,"provider"?: string | null,"provider_subscription_id"?: string | null,"status"?: Database["public"]['Enums']["subscription_status"],"trial_end"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "cancel_at_period_end"?: boolean,"canceled_at"?: string | null,"created_at"?: string,"current_period_end"?: string | null,"current_period_start"?: string | null,"ended_at"?: string | null,"id"?: string,"organization_id"?: string,"pending_plan_effective_at"?: string | null,"pending_plan_id"?: string | null,"plan_id"?: string,"provider"?: string | null,"provider_subscription_id"?: string | null,"status"?: Database["public"]['Enums']["subscription_status"],"trial_end"?: string | null,"updated_at"?: string
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
                },"usage_metrics": {
                  Row: {
                    "amount": number,"created_at": string,"id": string,"limit_amount": number | null,"metadata": NonNullable<Json>,"metric": string,"occurred_at": string,"organization_id": string,"request_id": string | null,"resets_at": string | null,"state": string,"used": number | null,"user_id": string | null,"window_units": (Database["public"]['Enums']["usage_window"])[]
                  }
                  ComputedFields: never
                  Insert: {
                    "amount": number,"created_at"?: string,"id"?: string,"limit_amount"?: number | null,"metadata"?: NonNullable<Json>,"metric": string,"occurred_at"?: string,"organization_id": string,"request_id"?: string | null,"resets_at"?: string | null,"state"?: string,"used"?: number | null,"user_id"?: string | null,"window_units"?: (Database["public"]['Enums']["usage_window"])[]
                  }
                  Update: {
                    "amount"?: number,"created_at"?: string,"id"?: string,"limit_amount"?: number | null,"metadata"?: NonNullable<Json>,"metric"?: string,"occurred_at"?: string,"organization_id"?: string,"request_id"?: string | null,"resets_at"?: string | null,"state"?: string,"used"?: number | null,"user_id"?: string | null,"window_units"?: (Database["public"]['Enums']["usage_window"])[]
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
                },"webhook_events": {
                  Row: {
                    "attempts": number,"created_at": string,"event_id": string,"event_type": string,"id": string,"last_error": string | null,"payload": NonNullable<Json>,"processed_at": string | null,"provider": string,"received_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "attempts"?: number,"created_at"?: string,"event_id": string,"event_type": string,"id"?: string,"last_error"?: string | null,"payload": NonNullable<Json>,"processed_at"?: string | null,"provider": string,"received_at"?: string
                  }
                  Update: {
                    "attempts"?: number,"created_at"?: string,"event_id"?: string,"event_type"?: string,"id"?: string,"last_error"?: string | null,"payload"?: NonNullable<Json>,"processed_at"?: string | null,"provider"?: string,"received_at"?: string
                  }
                  Relationships: [
                    
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
"ai_release":
{ Args: { "p_error_code"?: string,"p_latency_ms"?: number,"p_request_id": string,"p_status"?: Database["public"]['Enums']["ai_request_status"] }; Returns: boolean
                           },
"ai_reserve":
{ Args: { "p_cache_key"?: string,"p_max_tokens": number,"p_model": string,"p_organization_id": string,"p_prompt_tokens": number,"p_stream"?: boolean,"p_user_id": string }; Returns: Record<string, unknown>
                           },
"ai_settle":
{ Args: { "p_completion_tokens": number,"p_latency_ms"?: number,"p_prompt_tokens": number,"p_request_id": string,"p_response"?: Json,"p_status"?: Database["public"]['Enums']["ai_request_status"] }; Returns: Record<string, unknown>
                           },
"apply_payment_event":
{ Args: { "p_event": Json }; Returns: Json
                           },
"attach_provider_checkout":
{ Args: { "p_order_id": string,"p_provider_order_id": string,"p_provider_subscription_id"?: string }; Returns: {
              "amount_cents": number,
"created_at": string,
"created_by": string | null,
"currency": string,
"expires_at": string | null,
"gst_rate_bp": number | null,
"id": string,
"kind": string,
"metadata": NonNullable<Json>,
"organization_id": string,
"paid_at": string | null,
"place_of_supply_state_code": string | null,
"plan_id": string,
"prices_include_tax": boolean | null,
"provider": string,
"provider_order_id": string | null,
"provider_subscription_id": string | null,
"receipt": string,
"status": string,
"subscription_id": string | null,
"supply_type": string | null,
"taxable_cents": number | null,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "orders"
        isOneToOne: true
        isSetofReturn: false
      } },
"cancel_checkout_order":
{ Args: { "p_order_id": string,"p_reason": string }; Returns: undefined
                           },
"cancel_subscription":
{ Args: { "p_at_period_end"?: boolean,"p_organization_id": string }; Returns: Json
                           },
"change_plan":
{ Args: { "p_organization_id": string,"p_plan_code": string }; Returns: Json
                           },
"claim_notifications":
{ Args: { "p_limit"?: number }; Returns: {
              "attempts": number,
"created_at": string,
"dedupe_key": string,
"id": string,
"kind": string,
"last_error": string | null,
"locked_until": string | null,
"organization_id": string,
"payload": NonNullable<Json>,
"sent_at": string | null,
"subscription_id": string | null
            }[]
                          SetofOptions: {
        from: "*"
        to: "notifications"
        isOneToOne: false
        isSetofReturn: true
      } },
"create_checkout_order":
{ Args: { "p_organization_id": string,"p_plan_code": string,"p_provider": string }; Returns: {
              "amount_cents": number,"buyer_email": string,"buyer_name": string,"currency": string,"expires_at": string,"order_id": string,"plan_code": string,"plan_interval": Database["public"]['Enums']["billing_interval"],"plan_name": string,"razorpay_plan_id": string,"razorpay_total_count": number,"receipt": string,"status": string
            }[]
                           },
"create_organization":
{ Args: { "p_name": string }; Returns: string
                           },
"effective_tier":
{ Args: { "p_organization_id": string }; Returns: string
                           },
"get_entitlements":
{ Args: { "p_organization_id": string }; Returns: Json
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
"mark_notification_sent":
{ Args: { "p_error"?: string,"p_id": string }; Returns: boolean
                           },
"prepare_order_checkout":
{ Args: { "p_order_id": string,"p_organization_id": string,"p_provider": string }; Returns: {
              "amount_cents": number,"buyer_email": string,"buyer_name": string,"currency": string,"expires_at": string,"order_id": string,"plan_code": string,"plan_interval": Database["public"]['Enums']["billing_interval"],"plan_name": string,"razorpay_plan_id": string,"razorpay_total_count": number,"receipt": string,"status": string
            }[]
                           },
"preview_plan_change":
{ Args: { "p_organization_id": string,"p_plan_code": string }; Returns: Json
                           },
"reconcile_due_orders":
{ Args: { "p_limit"?: number }; Returns: {
              "amount_cents": number,"created_at": string,"currency": string,"order_id": string,"provider": string,"provider_order_id": string,"receipt": string
            }[]
                           },
"release_usage":
{ Args: { "p_organization_id": string,"p_request_id": string }; Returns: number
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
"settle_usage":
{ Args: { "p_actual_amount": number,"p_metric"?: string,"p_organization_id": string,"p_request_id": string }; Returns: Record<string, unknown>
                           },
"start_trial":
{ Args: { "p_organization_id": string,"p_plan_code": string }; Returns: Json
                           },
"update_billing_profile":
{ Args: { "p_address_line1"?: string,"p_address_line2"?: string,"p_billing_email"?: string,"p_billing_name": string,"p_city"?: string,"p_country"?: string,"p_gstin"?: string,"p_organization_id": string,"p_postal_code"?: string,"p_state_code"?: string }; Returns: {
              "billing_address_line1": string | null,
"billing_address_line2": string | null,
"billing_city": string | null,
"billing_country": string,
"billing_email": string | null,
"billing_name": string | null,
"billing_postal_code": string | null,
"created_at": string,
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
      } },
"void_invoice":
{ Args: { "p_invoice_id": string,"p_reason": string }; Returns: string
                           }
          }
          Enums: {
            "ai_request_status": "pending"|"completed"|"cached"|"denied"|"upstream_error"|"upstream_timeout"|"client_closed"|"expired","billing_interval": "month"|"year","member_role": "owner"|"admin"|"member","payment_provider": "payu"|"razorpay"|"manual","subscription_status": "pending_payment"|"trialing"|"active"|"past_due"|"canceled"|"expired","usage_window": "minute"|"hour"|"day"|"month"
          }
          CompositeTypes: {
            [_ in never]: never
          }
        },
  "billing": {
          Tables: {
            [_ in never]: never
          }
          Views: {
            [_ in never]: never
          }
          Functions: {
            "ai_reserve":
{ Args: { "p_cache_key"?: string,"p_max_tokens": number,"p_model": string,"p_organization_id": string,"p_prompt_tokens": number,"p_stream"?: boolean,"p_user_id": string }; Returns: {
              "allowed": boolean,"cached_response": Json,"denial": string,"limit_amount": number,"max_tokens": number,"plan_code": string,"rate_limit": number,"rate_remaining": number,"rate_reset_seconds": number,"remaining": number,"request_id": string,"reserved_tokens": number,"retry_after_seconds": number
            }[]
                           },
"apply_payment_event":
{ Args: { "p_event": Json }; Returns: Json
                           },
"reconcile_due_orders":
{ Args: { "p_limit"?: number }; Returns: {
              "amount_cents": number,"created_at": string,"currency": string,"order_id": string,"provider": Database["public"]['Enums']["payment_provider"],"provider_order_id": string,"receipt": string
            }[]
                           }
          }
          Enums: {
            [_ in never]: never
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
          Enums: {}
        },
  "public": {
          Enums: {
            "ai_request_status": ["pending", "completed", "cached", "denied", "upstream_error", "upstream_timeout", "client_closed", "expired"],"billing_interval": ["month", "year"],"member_role": ["owner", "admin", "member"],"payment_provider": ["payu", "razorpay", "manual"],"subscription_status": ["pending_payment", "trialing", "active", "past_due", "canceled", "expired"],"usage_window": ["minute", "hour", "day", "month"]
          }
        }
} as const
