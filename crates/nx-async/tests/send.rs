//! Every public future of nx-async is `Send + 'static` when its arguments are owned: each public
//! method of [`Client`], [`OnPremClient`] and [`NotificationHub`] is spawned on tokio below, so
//! a future that stops being `Send` (a non-`Sync` reader borrowed across an `.await`, say) fails
//! the build, not a user's axum handler.

use std::time::Duration;

use nx_async::{Client, DownloadOptions, MediaInfo, NotificationHub, OnPremClient, UploadSource};
use nx_protocol::onprem::{DeleteMedia, RetryDownload};
use nx_protocol::wa::GetMedia;

/// A reader that is `Send` but not `Sync`, as `Box<dyn AsyncRead + Send + Unpin>` is.
fn one_shot() -> UploadSource {
    let reader = std::io::Cursor::new(vec![0u8; 4]);
    UploadSource::reader(Box::new(reader), 4, "a.bin")
}

/// Spawns every public async method (never run: the test is that this compiles).
fn spawn_everything(client: Client, onprem: OnPremClient, hub: NotificationHub, info: MediaInfo) {
    let (c, o) = (client.clone(), onprem.clone());
    let phone = String::from("8615800001795");
    let id = String::from("m");
    // Each future owns clones of what it borrows, as a spawned task must.
    macro_rules! spawn {
        ($c:ident, $o:ident, $info:ident, $phone:ident, $id:ident, $body:expr) => {{
            let ($c, $o, $info) = ($c.clone(), $o.clone(), $info.clone());
            let ($phone, $id) = ($phone.clone(), $id.clone());
            tokio::spawn(async move {
                let _ = (&$c, &$o, &$info, &$phone, &$id);
                drop($body.await)
            });
        }};
    }
    spawn!(
        c,
        o,
        info,
        phone,
        id,
        c.execute(&GetMedia::new(&phone, &id))
    );
    spawn!(c, o, info, phone, id, c.get_media(&phone, &id));
    spawn!(c, o, info, phone, id, c.delete_media(&phone, &id));
    spawn!(
        c,
        o,
        info,
        phone,
        id,
        c.upload_media(&phone, "image/png", one_shot())
    );
    spawn!(c, o, info, phone, id, async {
        let mut sink = tokio::io::sink();
        c.download(&info, &mut sink, DownloadOptions::new()).await
    });
    spawn!(c, o, info, phone, id, async {
        let mut sink = tokio::io::sink();
        c.download_media(&phone, &id, &mut sink, DownloadOptions::new())
            .await
    });
    spawn!(
        c,
        o,
        info,
        phone,
        id,
        c.download_media_to_path(&phone, &id, "f", DownloadOptions::new())
    );
    spawn!(
        c,
        o,
        info,
        phone,
        id,
        c.download_to_path(&info, "f", DownloadOptions::new())
    );
    spawn!(c, o, info, phone, id, o.login());
    spawn!(c, o, info, phone, id, o.first_login("new password"));
    spawn!(c, o, info, phone, id, o.execute(&RetryDownload::new(&id)));
    spawn!(c, o, info, phone, id, o.execute(&DeleteMedia::new(&id)));
    spawn!(
        c,
        o,
        info,
        phone,
        id,
        o.upload_media("image/png", one_shot())
    );
    spawn!(c, o, info, phone, id, o.delete_media(&id));
    spawn!(c, o, info, phone, id, o.retry_download(&id));
    spawn!(c, o, info, phone, id, async {
        let mut sink = tokio::io::sink();
        o.retrieve_media(&id, &mut sink, DownloadOptions::new())
            .await
    });
    spawn!(
        c,
        o,
        info,
        phone,
        id,
        o.retrieve_media_to_path(&id, "f", DownloadOptions::new())
    );
    let expected = hub.expect("m");
    tokio::spawn(async move { drop(expected.wait(Duration::from_secs(1)).await) });
    drop((client, onprem));
}

#[test]
fn every_public_future_is_send_and_static() {
    // Naming the function makes the compiler check every spawn in it.
    let spawn: fn(Client, OnPremClient, NotificationHub, MediaInfo) = spawn_everything;
    let _ = spawn;
}
