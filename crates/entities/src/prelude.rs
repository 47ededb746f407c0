//! The entities under short names: `use entities::prelude::*;`.

pub use crate::generation::Entity as Generations;
pub use crate::project::Entity as Projects;
pub use crate::shot::Entity as Shots;
pub use crate::shot_generation::Entity as ShotGenerations;
pub use crate::task::Entity as Tasks;
pub use crate::user::Entity as Users;
pub use crate::{Id, IdList, TaskStatus};
