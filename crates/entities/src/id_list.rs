//! [`IdList`]: a list of row ids, `uuid[]` on Postgres and a JSON array of text on SQLite.

use std::ops::{Deref, DerefMut};

use sea_orm::sea_query::{ArrayType, ColumnType, Nullable, Value, ValueType, ValueTypeErr};
use sea_orm::{ColIdx, DbErr, QueryResult, TryGetError, TryGetable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Id;

/// An ordered list of row ids (`tasks.dependant_on`, `generations.tasks`): the same
/// [`Id`] type the rows' own ids have, so `task.dependant_on.contains(&other.id)` and
/// `task.dependant_on == [a.id, b.id]` read as they should.
///
/// Bound as a Postgres `uuid[]` value; the `dal` connection turns that into a JSON array
/// of canonical uuid strings on SQLite (SeaORM cannot bind arrays there). Reading accepts
/// either form. Order and duplicates are kept as written.
///
/// ```
/// use entities::{Id, IdList};
/// let a = Id::new();
/// let list: IdList = [a].into_iter().collect();
/// assert!(list.contains(&a));
/// assert_eq!(list, [a]);
/// assert_eq!(serde_json::to_string(&list).unwrap(), format!("[\"{a}\"]"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdList(pub Vec<Id>);

impl IdList {
    /// An empty list.
    pub const fn new() -> Self {
        IdList(Vec::new())
    }

    /// The JSON text this list is stored as on SQLite: `["<uuid>", ...]`.
    pub fn to_json_text(&self) -> String {
        json_text(&self.0)
    }
}

/// The canonical JSON text of a uuid list: lowercase hyphenated strings, no spaces.
pub(crate) fn json_text(ids: &[Id]) -> String {
    let mut out = String::with_capacity(2 + ids.len() * 39);
    out.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(
            id.uuid()
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer()),
        );
        out.push('"');
    }
    out.push(']');
    out
}

impl Deref for IdList {
    type Target = Vec<Id>;

    fn deref(&self) -> &Vec<Id> {
        &self.0
    }
}

impl DerefMut for IdList {
    fn deref_mut(&mut self) -> &mut Vec<Id> {
        &mut self.0
    }
}

impl From<Vec<Id>> for IdList {
    fn from(value: Vec<Id>) -> Self {
        IdList(value)
    }
}

impl From<IdList> for Vec<Id> {
    fn from(value: IdList) -> Self {
        value.0
    }
}

impl FromIterator<Id> for IdList {
    fn from_iter<T: IntoIterator<Item = Id>>(iter: T) -> Self {
        IdList(iter.into_iter().collect())
    }
}

/// From plain uuids (read from elsewhere, say a JSON payload).
impl From<Vec<Uuid>> for IdList {
    fn from(value: Vec<Uuid>) -> Self {
        value.into_iter().map(Id::from).collect()
    }
}

impl FromIterator<Uuid> for IdList {
    fn from_iter<T: IntoIterator<Item = Uuid>>(iter: T) -> Self {
        IdList(iter.into_iter().map(Id::from).collect())
    }
}

impl<'a> IntoIterator for &'a IdList {
    type Item = &'a Id;
    type IntoIter = std::slice::Iter<'a, Id>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for IdList {
    type Item = Id;
    type IntoIter = std::vec::IntoIter<Id>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<const N: usize> PartialEq<[Id; N]> for IdList {
    fn eq(&self, other: &[Id; N]) -> bool {
        self.0 == other
    }
}

impl PartialEq<[Id]> for IdList {
    fn eq(&self, other: &[Id]) -> bool {
        self.0 == other
    }
}

impl PartialEq<Vec<Id>> for IdList {
    fn eq(&self, other: &Vec<Id>) -> bool {
        &self.0 == other
    }
}

impl From<IdList> for Value {
    fn from(value: IdList) -> Self {
        let items = value
            .0
            .into_iter()
            .map(|id| Value::Uuid(Some(id.uuid())))
            .collect();
        Value::Array(ArrayType::Uuid, Some(Box::new(items)))
    }
}

impl ValueType for IdList {
    fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
        match v {
            Value::Array(ArrayType::Uuid, Some(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::Uuid(Some(u)) => Ok(Id::from(u)),
                    _ => Err(ValueTypeErr),
                })
                .collect(),
            Value::String(Some(text)) => parse_json_text(&text).map_err(|_| ValueTypeErr),
            _ => Err(ValueTypeErr),
        }
    }

    fn type_name() -> String {
        "IdList".to_owned()
    }

    fn array_type() -> ArrayType {
        ArrayType::Uuid
    }

    fn column_type() -> ColumnType {
        ColumnType::Array(std::sync::Arc::new(ColumnType::Uuid))
    }
}

impl Nullable for IdList {
    fn null() -> Value {
        Value::Array(ArrayType::Uuid, None)
    }
}

impl TryGetable for IdList {
    fn try_get_by<I: ColIdx>(res: &QueryResult, index: I) -> Result<Self, TryGetError> {
        if res.try_as_sqlite_row().is_some() {
            let text = String::try_get_by(res, index)?;
            parse_json_text(&text).map_err(TryGetError::DbErr)
        } else {
            Vec::<Uuid>::try_get_by(res, index).map(|ids| ids.into_iter().map(Id::from).collect())
        }
    }
}

fn parse_json_text(text: &str) -> Result<IdList, DbErr> {
    serde_json::from_str::<Vec<Uuid>>(text)
        .map(|ids| ids.into_iter().map(Id::from).collect())
        .map_err(|e| DbErr::Type(format!("stored id list is not a JSON array of uuids: {e}")))
}

impl sea_orm::IntoActiveValue<IdList> for IdList {
    fn into_active_value(self) -> sea_orm::ActiveValue<IdList> {
        sea_orm::ActiveValue::Set(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_is_canonical_and_parses_back() {
        let ids = vec![Id::new(), Id::from(Uuid::new_v4())];
        let text = json_text(&ids);
        assert_eq!(text, serde_json::to_string(&ids).unwrap());
        assert_eq!(parse_json_text(&text).unwrap().0, ids);
        assert_eq!(json_text(&[]), "[]");
    }
}
