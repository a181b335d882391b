//! Every socket `rotate-db-password` opens has `TCP_NODELAY` set (issue #14): with Nagle's
//! algorithm on, each small write of a TLS login waits for a delayed ACK. The relay in front of
//! the database reads the option from the rotator's own socket (e2e::sockets), for every login of
//! a whole rotation: current, master and pending users, with TLS and without. The relay also
//! counts the logins of each rotation.

use e2e::db::{Kind, unique_user};
use e2e::driver::{self, Options};
use e2e::runtime_api::Function;
use e2e::sockets::Relay;
use e2e::stack;
use serde_json::json;
use std::io::Write;

const BINARY: &str = "rotate-db-password";

#[tokio::test]
async fn every_database_socket_of_a_rotation_has_tcp_nodelay_and_logins_are_few() {
    let client = stack::client().await;
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let relay = Relay::start(kind.port()).await;

        // The probe can tell: a socket of this test process without TCP_NODELAY reads as off.
        let mut plain = std::net::TcpStream::connect(("127.0.0.1", relay.port)).unwrap();
        plain.set_nodelay(false).unwrap();
        plain.write_all(b"\0\0\0\x08\x04\xd2\x16\x2f").unwrap();
        let control = loop {
            if let Some(seen) = relay.seen().pop() {
                break seen.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert!(
            !control.nodelay,
            "{kind:?}: the control socket reads as NODELAY"
        );
        drop(plain);

        let mut function = Function::start(
            &e2e::workspace_binary(BINARY),
            &e2e::db::function_env(),
            false,
        )
        .await
        .unwrap();
        let at_relay = |user: &str, password: &str, ssl: bool| {
            let mut v = kind.secret(user, password);
            v["port"] = json!(relay.port);
            v["ssl"] = json!(ssl);
            v
        };
        let (super_user, super_pw) = kind.superuser();
        let master = stack::create_secret(
            &client,
            &stack::unique("nodelay-master"),
            &at_relay(&super_user, &super_pw, true).to_string(),
        )
        .await;
        for ssl in [true, false] {
            let single = unique_user("nd");
            kind.create_user(&single, "Initial-pw-1").await;
            let alternating = unique_user("nd");
            kind.create_user(&alternating, "Initial-pw-1").await;
            let mut value = at_relay(&alternating, "Initial-pw-1", ssl);
            value["masterarn"] = json!(master);
            // Logins per rotation: single user set 1 (AWSCURRENT; a pending password tried
            // first would fail every time), test 1, finish's re-test 1; alternating set 2
            // (current, master), test and re-test 1 each, or 3 each on MySQL/MariaDB (pending,
            // and current + master to read the grants).
            let alternating_logins = if kind == Kind::Postgres { 4 } else { 8 };
            for (value, logins) in [
                (at_relay(&single, "Initial-pw-1", ssl), 3),
                (value, alternating_logins),
            ] {
                let arn =
                    stack::create_secret(&client, &stack::unique("nodelay"), &value.to_string())
                        .await;
                let before = relay.seen().len();
                driver::rotate_ok(&client, &mut function, &arn, &Options::new(BINARY)).await;
                let seen = relay.seen();
                for s in &seen[before..] {
                    let s = s.as_ref().unwrap_or_else(|e| panic!("{kind:?}: {e}"));
                    assert!(s.exe.ends_with(BINARY), "{kind:?}: {s:?}");
                    assert!(
                        s.nodelay,
                        "{kind:?} ssl={ssl}: a socket of the rotator has Nagle on: {s:?}"
                    );
                }
                assert_eq!(
                    seen.len() - before,
                    logins,
                    "{kind:?} ssl={ssl} masterarn={}",
                    value["masterarn"]
                );
            }
        }
        function.stop().await;
    }
}
