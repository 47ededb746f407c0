//! Users and projects through their repositories, including keyset pagination.

use std::collections::HashSet;

use dal::DalError;
use dal::prelude::*;
use dal::repo::MAX_PAGE_SIZE;
use parity_tests::parity_test;
use sea_orm::{ActiveModelTrait, Set};

parity_test!(async fn users_crud_and_not_found(t) {
    let users = t.db.users();
    let ada = users
        .create(NewUser::new().email("ada@example.com").display_name("Ada"))
        .await
        .unwrap();
    assert_eq!(ada.id.get_version_num(), 7, "ids are UUIDv7 from the library");
    assert_eq!(users.get(ada.id).await.unwrap(), ada, "what is written reads back equal");
    assert_eq!(users.find_by_email("ada@example.com").await.unwrap(), Some(ada.clone()));
    assert_eq!(users.find_by_email("nobody@example.com").await.unwrap(), None);

    let mut renamed = ada.clone();
    renamed.display_name = Some("Ada L.".into());
    renamed.created_at = chrono::Utc::now() + chrono::Duration::days(3);
    let renamed = users.update(renamed).await.unwrap();
    assert_eq!(renamed.display_name.as_deref(), Some("Ada L."));
    assert_eq!(renamed.created_at, ada.created_at, "created_at never changes");

    let dup = users
        .create(NewUser::new().email("ada@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(dup, DalError::Conflict { .. }), "{dup:?}");

    users.delete(ada.id).await.unwrap();
    let missing = users.get(ada.id).await.unwrap_err();
    assert!(matches!(missing, DalError::NotFound { entity: "user", .. }), "{missing:?}");
    assert!(matches!(users.delete(ada.id).await, Err(DalError::NotFound { .. })));
    assert!(matches!(users.update(renamed).await, Err(DalError::NotFound { .. })));
});

parity_test!(async fn projects_crud_validation_and_not_found(t) {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let projects = t.db.projects();

    let blank = projects.create(NewProject::new(user.id, "  ")).await.unwrap_err();
    assert!(matches!(blank, DalError::InvalidValue { .. }), "{blank:?}");
    let orphan = projects.create(NewProject::new(Id::new(), "Orphan")).await.unwrap_err();
    assert!(matches!(orphan, DalError::MissingParent { .. }), "{orphan:?}");

    let film = projects.create(NewProject::new(user.id, "Film")).await.unwrap();
    assert_eq!(projects.get(film.id).await.unwrap(), film);
    let mut renamed = film.clone();
    renamed.name = "Feature film".into();
    assert_eq!(projects.update(renamed).await.unwrap().name, "Feature film");

    projects.delete(film.id).await.unwrap();
    assert!(matches!(projects.get(film.id).await, Err(DalError::NotFound { entity: "project", .. })));
    assert!(matches!(projects.delete(film.id).await, Err(DalError::NotFound { .. })));
});

parity_test!(async fn projects_page_newest_first_by_cursor_with_ties(t) {
    let owner = t.db.users().create(NewUser::default()).await.unwrap();
    let stranger = t.db.users().create(NewUser::default()).await.unwrap();
    t.db.projects().create(NewProject::new(stranger.id, "not mine")).await.unwrap();

    // 25 projects over 5 timestamps: equal created_at values must still page stably.
    let base = dal::clock::now();
    let mut expected = Vec::new();
    for i in 0..25 {
        let project = entities::project::ActiveModel {
            row_version: sea_orm::ActiveValue::Set(1),
            id: Set(Id::new()),
            name: Set(format!("p{i}")),
            user_id: Set(owner.id),
            created_at: Set(base - chrono::Duration::seconds(i % 5)),
        }
        .insert(&t.db)
        .await
        .unwrap();
        expected.push(project);
    }
    expected.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));

    let mut seen = Vec::new();
    let mut request = PageRequest::first(10);
    let mut pages = 0;
    loop {
        let page = t.db.projects().list_for_user(owner.id, request).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 10);
        seen.extend(page.items);
        match page.next {
            // The cursor travels as text, as it would through an API.
            Some(cursor) => request = PageRequest::after(cursor.to_string().parse().unwrap(), 10),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected, "every project once, newest first, ties by id");
    assert_eq!(seen.iter().map(|p| p.id).collect::<HashSet<_>>().len(), 25);

    assert_eq!(PageRequest::first(10_000).limit(), MAX_PAGE_SIZE, "page size is capped");
    let bad = "not-a-cursor".parse::<Cursor>().unwrap_err();
    assert!(matches!(bad, DalError::InvalidValue { .. }));
    let empty = t.db.projects().list_for_user(Id::new(), PageRequest::first(10)).await.unwrap();
    assert!(empty.items.is_empty() && empty.next.is_none());
});
