//! Deterministic ids: the same name always gives the same id, in every database.

use entities::Id;
use uuid::Uuid;

/// The namespace of every id this crate derives (a fixed, random UUID).
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a57_9e0b_4c8d_a3f2_5b7e_91d4_c086);

/// The id of the seed record `name` of `table`: UUIDv5, stable across runs and machines.
///
/// ```
/// use seed::seed_id;
/// assert_eq!(seed_id("projects", "demo-film"), seed_id("projects", "demo-film"));
/// assert_ne!(seed_id("projects", "demo-film"), seed_id("shots", "demo-film"));
/// ```
pub fn seed_id(table: &str, name: &str) -> Id {
    Id(Uuid::new_v5(
        &NAMESPACE,
        format!("{table}/{name}").as_bytes(),
    ))
}
