//! [`FromRow`] for each entity's model: the columns in the entity's order, each with the
//! reader for its type.

use super::{Cells, FromRow, Raw};
use crate::DalError;

impl FromRow for entities::user::Model {
    const TABLE: &'static str = "users";
    const COLUMNS: &'static [&'static str] =
        &["id", "email", "display_name", "created_at", "row_version"];

    fn from_row(row: Raw<'_>, at: usize) -> Result<Self, DalError> {
        let (mut c, id) = Cells::start::<Self>(row, at)?;
        Ok(Self {
            id,
            email: c.next(Raw::opt_text)?,
            display_name: c.next(Raw::opt_text)?,
            created_at: c.next(Raw::timestamp)?,
            row_version: c.next(Raw::int64)?,
        })
    }
}

impl FromRow for entities::project::Model {
    const TABLE: &'static str = "projects";
    const COLUMNS: &'static [&'static str] =
        &["id", "name", "user_id", "created_at", "row_version"];

    fn from_row(row: Raw<'_>, at: usize) -> Result<Self, DalError> {
        let (mut c, id) = Cells::start::<Self>(row, at)?;
        Ok(Self {
            id,
            name: c.next(Raw::text)?,
            user_id: c.next(Raw::id)?,
            created_at: c.next(Raw::timestamp)?,
            row_version: c.next(Raw::int64)?,
        })
    }
}

impl FromRow for entities::task::Model {
    const TABLE: &'static str = "tasks";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "task_type",
        "params",
        "status",
        "dependant_on",
        "output_location",
        "created_at",
        "updated_at",
        "project_id",
        "row_version",
        "claimed_by",
        "lease_expires_at",
        "attempts",
        "max_attempts",
        "last_error",
    ];

    fn from_row(row: Raw<'_>, at: usize) -> Result<Self, DalError> {
        let (mut c, id) = Cells::start::<Self>(row, at)?;
        Ok(Self {
            id,
            task_type: c.next(Raw::text)?,
            params: c.next(Raw::json)?,
            status: c.next(Raw::status)?,
            dependant_on: c.next(Raw::id_list)?,
            output_location: c.next(Raw::opt_text)?,
            created_at: c.next(Raw::timestamp)?,
            updated_at: c.next(Raw::timestamp)?,
            project_id: c.next(Raw::id)?,
            row_version: c.next(Raw::int64)?,
            claimed_by: c.next(Raw::opt_text)?,
            lease_expires_at: c.next(Raw::opt_timestamp)?,
            attempts: c.next(Raw::int32)?,
            max_attempts: c.next(Raw::int32)?,
            last_error: c.next(Raw::opt_text)?,
        })
    }
}

impl FromRow for entities::generation::Model {
    const TABLE: &'static str = "generations";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "tasks",
        "location",
        "type",
        "created_at",
        "updated_at",
        "project_id",
        "row_version",
    ];

    fn from_row(row: Raw<'_>, at: usize) -> Result<Self, DalError> {
        let (mut c, id) = Cells::start::<Self>(row, at)?;
        Ok(Self {
            id,
            tasks: c.next(Raw::id_list)?,
            location: c.next(Raw::opt_text)?,
            generation_type: c.next(Raw::opt_text)?,
            created_at: c.next(Raw::timestamp)?,
            updated_at: c.next(Raw::timestamp)?,
            project_id: c.next(Raw::id)?,
            row_version: c.next(Raw::int64)?,
        })
    }
}

impl FromRow for entities::shot::Model {
    const TABLE: &'static str = "shots";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "name",
        "created_at",
        "updated_at",
        "project_id",
        "row_version",
    ];

    fn from_row(row: Raw<'_>, at: usize) -> Result<Self, DalError> {
        let (mut c, id) = Cells::start::<Self>(row, at)?;
        Ok(Self {
            id,
            name: c.next(Raw::text)?,
            created_at: c.next(Raw::timestamp)?,
            updated_at: c.next(Raw::timestamp)?,
            project_id: c.next(Raw::id)?,
            row_version: c.next(Raw::int64)?,
        })
    }
}

impl FromRow for entities::shot_generation::Model {
    const TABLE: &'static str = "shot_generations";
    const COLUMNS: &'static [&'static str] =
        &["id", "shot_id", "generation_id", "position", "row_version"];

    fn from_row(row: Raw<'_>, at: usize) -> Result<Self, DalError> {
        let (mut c, id) = Cells::start::<Self>(row, at)?;
        Ok(Self {
            id,
            shot_id: c.next(Raw::id)?,
            generation_id: c.next(Raw::id)?,
            position: c.next(Raw::int32)?,
            row_version: c.next(Raw::int64)?,
        })
    }
}
