
export type Json = string | number | boolean | null | { [key: string]: Json | undefined } | Json[]

export type Database = {
  
  "public": {
          Tables: {
            "billing_plans": {
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
                    "app_failure_url": string | null,"app_success_url": string | null,"created_at": string,"default_currency": string,"default_timezone": string,"grace_days": number,"id": boolean,"invoice_prefix": string,"order_pending_reconcile_after": string,"seller_gstin": string | null,"seller_legal_name": string | null,"seller_state_code": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "app_failure_url"?: string | null,"app_success_url"?: string | null,"created_at"?: string,"default_currency"?: string,"default_timezone"?: string,"grace_days"?: number,"id"?: boolean,"invoice_prefix"?: string,"order_pending_reconcile_after"?: string,"seller_gstin"?: string | null,"seller_legal_name"?: string | null,"seller_state_code"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "app_failure_url"?: string | null,"app_success_url"?: string | null,"created_at"?: string,"default_currency"?: string,"default_timezone"?: string,"grace_days"?: number,"id"?: boolean,"invoice_prefix"?: string,"order_pending_reconcile_after"?: string,"seller_gstin"?: string | null,"seller_legal_name"?: string | null,"seller_state_code"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"orders": {
                  Row: {
                    "amount_cents": number,"created_at": string,"created_by": string | null,"currency": string,"expires_at": string | null,"id": string,"kind": string,"metadata": NonNullable<Json>,"organization_id": string,"paid_at": string | null,"plan_id": string,"provider": string,"provider_order_id": string | null,"receipt": string,"status": string,"subscription_id": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "amount_cents": number,"created_at"?: string,"created_by"?: string | null,"currency"?: string,"expires_at"?: string | null,"id"?: string,"kind"?: string,"metadata"?: NonNullable<Json>,"organization_id": string,"paid_at"?: string | null,"plan_id": string,"provider": string,"provider_order_id"?: string | null,"receipt"?: string,"status"?: string,"subscription_id"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "amount_cents"?: number,"created_at"?: string,"created_by"?: string | null,"currency"?: string,"expires_at"?: string | null,"id"?: string,"kind"?: string,"metadata"?: NonNullable<Json>,"organization_id"?: string,"paid_at"?: string | null,"plan_id"?: string,"provider"?: string,"provider_order_id"?: string | null,"receipt"?: string,"status"?: string,"subscription_id"?: string | null,"updated_at"?: string
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
                    "billing_email": string | null,"billing_name": string | null,"created_at": string,"gstin": string | null,"id": string,"name": string,"state_code": string | null,"timezone": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "billing_email"?: string | null,"billing_name"?: string | null,"created_at"?: string,"gstin"?: string | null,"id"?: string,"name": string,"state_code"?: string | null,"timezone"?: string,"updated_at"?: string
                  }
                  Update: {
                    "billing_email"?: string | null,"billing_name"?: string | null,"created_at"?: string,"gstin"?: string | null,"id"?: string,"name"?: string,"state_code"?: string | null,"timezone"?: string,"updated_at"?: string
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
                    "amount": number,"created_at": string,"id": string,"metadata": NonNullable<Json>,"metric": string,"occurred_at": string,"organization_id": string,"request_id": string | null,"user_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "amount": number,"created_at"?: string,"id"?: string,"metadata"?: NonNullable<Json>,"metric": string,"occurred_at"?: string,"organization_id": string,"request_id"?: string | null,"user_id"?: string | null
                  }
                  Update: {
                    "amount"?: number,"created_at"?: string,"id"?: string,"metadata"?: NonNullable<Json>,"metric"?: string,"occurred_at"?: string,"organization_id"?: string,"request_id"?: string | null,"user_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "usage_metrics_organization_id_fkey"
      columns: ["organization_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
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
            [_ in never]: never
          }
          Functions: {
            "add_organization_member":
{ Args: { "p_organization_id": string,"p_role"?: Database["public"]['Enums']["member_role"],"p_user_id": string }; Returns: undefined
                           },
"create_organization":
{ Args: { "p_name": string }; Returns: string
                           },
"remove_organization_member":
{ Args: { "p_organization_id": string,"p_user_id": string }; Returns: undefined
                           },
"set_member_role":
{ Args: { "p_organization_id": string,"p_role": Database["public"]['Enums']["member_role"],"p_user_id": string }; Returns: undefined
                           }
          }
          Enums: {
            "billing_interval": "month"|"year","member_role": "owner"|"admin"|"member","subscription_status": "pending_payment"|"trialing"|"active"|"past_due"|"canceled"|"expired","usage_window": "minute"|"hour"|"day"|"month"
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
  "public": {
          Enums: {
            "billing_interval": ["month", "year"],"member_role": ["owner", "admin", "member"],"subscription_status": ["pending_payment", "trialing", "active", "past_due", "canceled", "expired"],"usage_window": ["minute", "hour", "day", "month"]
          }
        }
} as const
