//! [`IdList`]: a list of uuids, `uuid[]` on Postgres and a JSON array of text on SQLite.

use std::ops::{Deref, DerefMut};

use sea_orm::sea_query::{ArrayType, ColumnType, Nullable, Value, ValueType, ValueTypeErr};
use sea_orm::{ColIdx, DbErr, QueryResult, TryGetError, TryGetable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An ordered list of uuids (`tasks.dependant_on`, `generations.tasks`).
///
/// Bound as a Postgres `uuid[]` value; the `dal` connection turns that into a JSON array
/// of canonical uuid strings on SQLite (SeaORM cannot bind arrays there). Reading accepts
/// either form. Order and duplicates are kept as written.
///
/// ```
/// use entities::IdList;
/// let a = uuid::Uuid::now_v7();
/// let list: IdList = vec![a].into();
/// assert_eq!(list.len(), 1);
/// assert_eq!(serde_json::to_string(&list).unwrap(), format!("[\"{a}\"]"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdList(pub Vec<Uuid>);

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
pub(crate) fn json_text(ids: &[Uuid]) -> String {
    let mut out = String::with_capacity(2 + ids.len() * 39);
    out.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
        out.push('"');
    }
    out.push(']');
    out
}

impl Deref for IdList {
    type Target = Vec<Uuid>;

    fn deref(&self) -> &Vec<Uuid> {
        &self.0
    }
}

impl DerefMut for IdList {
    fn deref_mut(&mut self) -> &mut Vec<Uuid> {
        &mut self.0
    }
}

impl From<Vec<Uuid>> for IdList {
    fn from(value: Vec<Uuid>) -> Self {
        IdList(value)
    }
}

impl From<IdList> for Vec<Uuid> {
    fn from(value: IdList) -> Self {
        value.0
    }
}

impl FromIterator<Uuid> for IdList {
    fn from_iter<T: IntoIterator<Item = Uuid>>(iter: T) -> Self {
        IdList(iter.into_iter().collect())
    }
}

impl From<IdList> for Value {
    fn from(value: IdList) -> Self {
        let items = value.0.into_iter().map(|u| Value::Uuid(Some(u))).collect();
        Value::Array(ArrayType::Uuid, Some(Box::new(items)))
    }
}

impl ValueType for IdList {
    fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
        match v {
            Value::Array(ArrayType::Uuid, Some(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::Uuid(Some(u)) => Ok(u),
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
            Vec::<Uuid>::try_get_by(res, index).map(IdList)
        }
    }
}

fn parse_json_text(text: &str) -> Result<IdList, DbErr> {
    serde_json::from_str::<Vec<Uuid>>(text)
        .map(IdList)
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
        let ids = vec![Uuid::now_v7(), Uuid::new_v4()];
        let text = json_text(&ids);
        assert_eq!(text, serde_json::to_string(&ids).unwrap());
        assert_eq!(parse_json_text(&text).unwrap().0, ids);
        assert_eq!(json_text(&[]), "[]");
    }
}
