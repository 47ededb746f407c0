// TEMPORARY (uncommitted): stands in for the helpers' scoped push/pull until they merge.
use super::*;
impl Server {
    #[allow(missing_docs)]
    pub async fn push_as(
        &self,
        _user: uuid::Uuid,
        batch: PushBatch,
    ) -> Result<PushAck, TransportError> {
        self.push(batch).await
    }
}
