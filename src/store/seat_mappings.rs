//! Per-tenant mappings from IdP groups to seat types.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QueryTrait,
};

use super::entities::seat_type_mapping;
use super::sql::SqlBuilder;
use super::{now, Reader, StoreError, Writer};

/// Every mapping of a tenant, highest priority first.
pub async fn list(conn: &impl ConnectionTrait, tenant_id: &str) -> Result<Vec<seat_type_mapping::Model>, StoreError> {
    Ok(seat_type_mapping::Entity::find()
        .filter(seat_type_mapping::Column::TenantId.eq(tenant_id))
        .order_by_desc(seat_type_mapping::Column::Priority)
        .all(conn)
        .await?)
}

/// The mapping of one group, if any.
pub async fn for_group(
    conn: &impl Reader,
    tenant_id: &str,
    group_id: &str,
) -> Result<Option<seat_type_mapping::Model>, StoreError> {
    Ok(super::unique(
        conn,
        seat_type_mapping::Entity::find_by_id((tenant_id.to_string(), group_id.to_string())),
    )
    .await?)
}

/// Creates or replaces the mapping of a group.
pub async fn put(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    group_id: &str,
    seat_type: &str,
    priority: i32,
) -> Result<(), StoreError> {
    match for_group(conn, tenant_id, group_id).await? {
        Some(existing) => {
            let mut active: seat_type_mapping::ActiveModel = existing.into();
            active.seat_type = Set(seat_type.to_string());
            active.priority = Set(priority);
            active.update(conn).await?;
        }
        None => {
            seat_type_mapping::ActiveModel {
                tenant_id: Set(tenant_id.to_string()),
                group_id: Set(group_id.to_string()),
                seat_type: Set(seat_type.to_string()),
                priority: Set(priority),
                created_at: Set(now()),
            }
            .insert(conn)
            .await?;
        }
    }
    Ok(())
}

/// Removes the mapping of a group; false when there was none.
pub async fn remove(conn: &impl Writer, tenant_id: &str, group_id: &str) -> Result<bool, StoreError> {
    let delete = seat_type_mapping::Entity::delete_many()
        .filter(seat_type_mapping::Column::TenantId.eq(tenant_id))
        .filter(seat_type_mapping::Column::GroupId.eq(group_id))
        .build(conn.backend());
    Ok(conn.write(delete).await? > 0)
}

/// The seat type a user gets from its groups: the mapping of highest priority (ties: the
/// seat type's name, so the answer is stable), or `None` when no group of the user is mapped.
pub async fn seat_type_of_user(
    conn: &impl Reader,
    tenant_id: &str,
    user_id: &str,
) -> Result<Option<String>, StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push(
        "SELECT s.seat_type FROM seat_type_mappings s JOIN group_members m ON m.group_id = s.group_id \
         WHERE s.tenant_id = ",
    )
    .bind(tenant_id.to_string())
    .push(" AND m.tenant_id = s.tenant_id AND m.member_id = ")
    .bind(user_id.to_string())
    .push(" ORDER BY s.priority DESC, s.seat_type LIMIT 1");
    Ok(super::strings(conn, b.build()).await?.into_iter().next())
}
