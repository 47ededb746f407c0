//! Live updates addressed to the users a change concerns: what each statement on a synced
//! table notifies (the owners of the rows it wrote, over the table's path to `users`),
//! and which online clients the sync server wakes for it (only those users').

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dal::prelude::*;
use migration_history::notify::MAX_NAMED_OWNERS;
use migration_history::synced::NOTIFY_CHANNEL;
use sea_orm::ConnectionTrait;
use serde_json::json;
use sqlx::postgres::PgListener;

use crate::sync::{run_postgres, server_world};
use crate::sync_http::{HttpRig, token_for};

/// A user with a project of their own, made on the server.
pub(crate) async fn owner(server: &Database, name: &str) -> (Id, Id) {
    let user = server.users().create(NewUser::default()).await.unwrap().id;
    let project = server
        .projects()
        .create(NewProject::new(user, name))
        .await
        .unwrap()
        .id;
    (user, project)
}

/// The notifications of the change channel, on a session of their own.
pub(crate) struct Notifications(PgListener);

impl Notifications {
    pub(crate) async fn listen(url: &str) -> Notifications {
        let mut listener = PgListener::connect(url).await.unwrap();
        listener.listen(NOTIFY_CHANNEL).await.unwrap();
        Notifications(listener)
    }

    /// The payloads notified since the last call: a marker (a new user, the one owner
    /// its insert names) is written, and what came before it is returned.
    pub(crate) async fn since(&mut self, server: &Database) -> Vec<String> {
        let marker = server.users().create(NewUser::default()).await.unwrap().id;
        let mut payloads = Vec::new();
        loop {
            let payload = tokio::time::timeout(Duration::from_secs(10), self.0.recv())
                .await
                .expect("a notification within 10 s")
                .unwrap()
                .payload()
                .to_owned();
            if payload == marker.to_string() {
                return payloads;
            }
            payloads.push(payload);
        }
    }

    /// The owners notified since the last call, all together (a transaction may notify
    /// more than once: a project's move re-stamps its tasks, and their statement names
    /// the new owner again).
    pub(crate) async fn owners(&mut self, server: &Database) -> HashSet<Id> {
        let payloads = self.since(server).await;
        payloads
            .iter()
            .flat_map(|payload| payload.split(','))
            .map(|id| {
                Id(id
                    .parse()
                    .unwrap_or_else(|_| panic!("{payloads:?} name owners")))
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_statement_notifies_the_owners_of_the_rows_it_wrote() {
    run_postgres(|t| async move {
        let server = t.db.clone();
        let mut heard = Notifications::listen(t.direct_url.as_deref().unwrap()).await;
        let (a, project_a) = owner(&server, "a's").await;
        let (b, project_b) = owner(&server, "b's").await;
        // A user row is its own owner; a project's is its user.
        assert_eq!(heard.owners(&server).await, HashSet::from([a, b]));

        // A task's, a shot's and a generation's are their project's; a timeline link's is
        // its shot's project's.
        server
            .tasks()
            .create(NewTask::queued(project_a, "render", json!({})))
            .await
            .unwrap();
        assert_eq!(heard.owners(&server).await, HashSet::from([a]));
        let shot = server
            .shots()
            .create(NewShot::new(project_b, "Opening"))
            .await
            .unwrap();
        let generation = server
            .generations()
            .create(NewGeneration::new(project_b))
            .await
            .unwrap();
        assert_eq!(heard.owners(&server).await, HashSet::from([b]));
        server
            .shots()
            .add_to_timeline(shot.id, generation.id, None)
            .await
            .unwrap();
        assert_eq!(heard.since(&server).await, vec![b.to_string()]);

        // A statement over two users' rows names both, once each, as another program
        // (a queue worker, psql) would write them.
        server
            .tasks()
            .create(NewTask::queued(project_b, "render", json!({})))
            .await
            .unwrap();
        heard.since(&server).await;
        server
            .execute_unprepared("UPDATE tasks SET status = 'Complete'")
            .await
            .unwrap();
        let payloads = heard.since(&server).await;
        assert_eq!(payloads.len(), 1, "{payloads:?}");
        let mut named: Vec<&str> = payloads[0].split(',').collect();
        named.sort();
        let mut both = vec![a.to_string(), b.to_string()];
        both.sort();
        assert_eq!(named, both);

        // A project given to another user: the old owner (whose replicas drop it) and the
        // new one (whose replicas get it).
        let c = server.users().create(NewUser::default()).await.unwrap().id;
        heard.since(&server).await;
        server
            .execute_unprepared(&format!(
                "UPDATE projects SET user_id = '{c}' WHERE id = '{project_a}'"
            ))
            .await
            .unwrap();
        assert_eq!(heard.owners(&server).await, HashSet::from([a, c]));

        // A statement that changes no row says nothing. A plain DELETE names the owner
        // (the cascade under it names no one else, its path being gone).
        server
            .execute_unprepared("UPDATE tasks SET status = 'Failed' WHERE false")
            .await
            .unwrap();
        assert_eq!(heard.since(&server).await, Vec::<String>::new());
        server
            .execute_unprepared(&format!("DELETE FROM projects WHERE id = '{project_b}'"))
            .await
            .unwrap();
        assert_eq!(heard.owners(&server).await, HashSet::from([b]));

        // Past the most a notification names, it says everyone.
        for n in 0..=MAX_NAMED_OWNERS {
            owner(&server, &format!("p{n}")).await;
        }
        heard.since(&server).await;
        server
            .execute_unprepared("UPDATE projects SET name = name || '!'")
            .await
            .unwrap();
        assert_eq!(heard.since(&server).await, vec!["*".to_owned()]);
    })
    .await;
}

/// A client's live-update stream, read raw.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(rig: &HttpRig, user: Id) -> Stream {
        let response = reqwest::Client::new()
            .get(format!("{}{}", rig.url, sync::http::EVENTS_PATH))
            .bearer_auth(token_for(user))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// Whether a `change` event came within `within`.
    async fn event_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if frame.contains("event: change") {
                    return true;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) => panic!("the event stream ended"),
                Ok(Err(e)) => panic!("the event stream failed: {e}"),
                Err(_) => return false,
            }
        }
    }

    /// Reads events until none has come for half a second.
    async fn quiet(&mut self) {
        while self.event_within(Duration::from_millis(500)).await {}
    }
}

const SOON: Duration = Duration::from_secs(5);
const NOTHING_FOR: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_wakes_only_its_owners_online_clients() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (a, project_a) = server_world(&rig.server).await;
        let (b, project_b) = owner(&rig.server, "b's").await;
        let (mut a_phone, mut a_laptop, mut b_phone) = (
            Stream::open(&rig, a).await,
            Stream::open(&rig, a).await,
            Stream::open(&rig, b).await,
        );
        for stream in [&mut a_phone, &mut a_laptop, &mut b_phone] {
            assert!(stream.event_within(SOON).await, "an event on connecting");
            stream.quiet().await;
        }

        // The web app adds a task to a's project: both of a's devices hear of it, b's not.
        let task_a = rig
            .server
            .tasks()
            .create(NewTask::queued(project_a, "render", json!({})))
            .await
            .unwrap();
        assert!(a_phone.event_within(SOON).await);
        assert!(a_laptop.event_within(SOON).await);
        assert!(
            !b_phone.event_within(NOTHING_FOR).await,
            "b was woken for a's task"
        );

        // A queue worker updates a's task in plain SQL: the same.
        rig.server
            .execute_unprepared(&format!(
                "UPDATE tasks SET status = 'In Progress' WHERE id = '{}'",
                task_a.id
            ))
            .await
            .unwrap();
        assert!(a_phone.event_within(SOON).await);
        assert!(
            !b_phone.event_within(NOTHING_FOR).await,
            "b was woken for a's update"
        );
        a_laptop.quiet().await;

        // b's replica pushes over HTTP: b's stream hears of it, a's do not.
        let client = rig.client("b-tablet").await;
        rig.sync(&client, b).await;
        client
            .database()
            .tasks()
            .create(NewTask::queued(project_b, "render", json!({})))
            .await
            .unwrap();
        rig.sync(&client, b).await;
        assert!(b_phone.event_within(SOON).await);
        b_phone.quiet().await;
        assert!(
            !a_phone.event_within(NOTHING_FOR).await,
            "a was woken for b's push"
        );

        // A statement that changes nothing wakes no one.
        rig.server
            .execute_unprepared("UPDATE tasks SET status = 'Failed' WHERE false")
            .await
            .unwrap();
        for stream in [&mut a_phone, &mut b_phone] {
            assert!(
                !stream.event_within(NOTHING_FOR).await,
                "woken by no change"
            );
        }

        // A DBA gives a's project to b: both hear of it (a's replicas drop it, b's get it).
        rig.server
            .execute_unprepared(&format!(
                "UPDATE projects SET user_id = '{b}' WHERE id = '{project_a}'"
            ))
            .await
            .unwrap();
        assert!(a_phone.event_within(SOON).await);
        assert!(b_phone.event_within(SOON).await);
    })
    .await;
}
