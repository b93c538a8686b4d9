//! Billing events in (with their "seen" records), the transactional outbox, outbound webhook
//! endpoints and their deliveries, and the billing → plan/tenant mapping tables.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InboundEvents {
    Table,
    Provider,
    EventId,
    TenantId,
    ReceivedAt,
    Outcome,
    Detail,
}

#[derive(DeriveIden)]
enum OutboxEvents {
    Table,
    Id,
    TenantId,
    EventType,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    TenantId,
    Kind,
    Url,
    Secret,
    EventTypes,
    Active,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    EventId,
    EndpointId,
    TenantId,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LastError,
    DeliveredAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum BillingPlans {
    Table,
    Provider,
    ExternalId,
    PlanName,
}

#[derive(DeriveIden)]
enum BillingCustomers {
    Table,
    Provider,
    CustomerId,
    TenantId,
}

#[derive(DeriveIden)]
enum Licenses {
    Table,
    BillingEventAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(InboundEvents::Table)
                .col(string(InboundEvents::Provider))
                .col(string(InboundEvents::EventId))
                .col(string_null(InboundEvents::TenantId))
                .col(timestamp_with_time_zone(InboundEvents::ReceivedAt))
                .col(string(InboundEvents::Outcome))
                .col(text_null(InboundEvents::Detail))
                .primary_key(Index::create().col(InboundEvents::Provider).col(InboundEvents::EventId))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(OutboxEvents::Table)
                .col(big_pk_auto(OutboxEvents::Id))
                .col(string(OutboxEvents::TenantId))
                .col(string(OutboxEvents::EventType))
                .col(text(OutboxEvents::Payload))
                .col(timestamp_with_time_zone(OutboxEvents::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_outbox_events_tenant")
                .table(OutboxEvents::Table)
                .col(OutboxEvents::TenantId)
                .col(OutboxEvents::Id)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookEndpoints::Table)
                .col(string(WebhookEndpoints::Id).primary_key())
                .col(string(WebhookEndpoints::TenantId))
                .col(string(WebhookEndpoints::Kind))
                .col(string(WebhookEndpoints::Url))
                .col(string(WebhookEndpoints::Secret))
                .col(text(WebhookEndpoints::EventTypes))
                .col(boolean(WebhookEndpoints::Active))
                .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Deliveries::Table)
                .col(big_pk_auto(Deliveries::Id))
                .col(big_integer(Deliveries::EventId))
                .col(string(Deliveries::EndpointId))
                .col(string(Deliveries::TenantId))
                .col(string(Deliveries::Status))
                .col(integer(Deliveries::Attempts))
                .col(timestamp_with_time_zone(Deliveries::NextAttemptAt))
                .col(timestamp_with_time_zone_null(Deliveries::LeaseUntil))
                .col(text_null(Deliveries::LastError))
                .col(timestamp_with_time_zone_null(Deliveries::DeliveredAt))
                .col(timestamp_with_time_zone(Deliveries::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_deliveries_endpoint_status")
                .table(Deliveries::Table)
                .col(Deliveries::EndpointId)
                .col(Deliveries::Status)
                .col(Deliveries::Id)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_deliveries_status_due")
                .table(Deliveries::Table)
                .col(Deliveries::Status)
                .col(Deliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(BillingPlans::Table)
                .col(string(BillingPlans::Provider))
                .col(string(BillingPlans::ExternalId))
                .col(string(BillingPlans::PlanName))
                .primary_key(
                    Index::create()
                        .col(BillingPlans::Provider)
                        .col(BillingPlans::ExternalId),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(BillingCustomers::Table)
                .col(string(BillingCustomers::Provider))
                .col(string(BillingCustomers::CustomerId))
                .col(string(BillingCustomers::TenantId))
                .primary_key(
                    Index::create()
                        .col(BillingCustomers::Provider)
                        .col(BillingCustomers::CustomerId),
                )
                .to_owned(),
        )
        .await?;
        let mut col = timestamp_with_time_zone_null(Licenses::BillingEventAt);
        m.alter_table(Table::alter().table(Licenses::Table).add_column(&mut col).to_owned())
            .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Licenses::Table)
                .drop_column(Licenses::BillingEventAt)
                .to_owned(),
        )
        .await?;
        for table in [
            BillingCustomers::Table.into_iden(),
            BillingPlans::Table.into_iden(),
            Deliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            OutboxEvents::Table.into_iden(),
            InboundEvents::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
