//! Checks G8 ("only authenticated members and users act; each user only on what its
//! permissions allow"): the permission rules alone, without a namenode.

use super::*;
use crate::error::ErrorKind;

fn attrs(owner: &str, group: &str, mode: u16, is_dir: bool) -> Attrs {
    Attrs {
        owner: owner.into(),
        group: group.into(),
        mode,
        is_dir,
    }
}

fn root() -> Attrs {
    attrs("admin", SUPERGROUP, 0o755, true)
}

/// `/user/alice` (0755 or `home_mode`) holding `f` (`file_mode`), all alice's.
fn alice_file(home_mode: u16, file_mode: u16) -> PathView {
    PathView {
        path: "/user/alice/f".into(),
        chain: vec![
            root(),
            attrs("admin", SUPERGROUP, 0o755, true),
            attrs("alice", SUPERGROUP, home_mode, true),
            attrs("alice", SUPERGROUP, file_mode, false),
        ],
        exists: true,
    }
}

fn as_user(user: &str) -> Caller<'_> {
    Caller {
        user,
        superuser: false,
    }
}

fn admin() -> Caller<'static> {
    Caller {
        user: "admin",
        superuser: true,
    }
}

fn denied_msg(r: Result<()>) -> String {
    let err = r.expect_err("expected a refusal");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    err.to_string()
}

#[test]
fn owner_reads_a_0600_file_and_others_cannot() {
    let v = alice_file(0o755, 0o600);
    check(as_user("alice"), &v, &Action::Read).unwrap();
    let msg = denied_msg(check(as_user("bob"), &v, &Action::Read));
    assert!(msg.contains("bob"), "{msg}");
    assert!(msg.contains("/user/alice/f"), "{msg}");
    assert!(msg.contains("read (r)"), "{msg}");
    assert!(msg.contains("-rw-------"), "{msg}");
    check(admin(), &v, &Action::Read).unwrap();
}

#[test]
fn a_0700_directory_stops_traversal_and_listing() {
    let v = alice_file(0o700, 0o644);
    let msg = denied_msg(check(as_user("bob"), &v, &Action::Traverse));
    assert!(msg.contains("search (x)"), "{msg}");
    assert!(msg.contains("/user/alice "), "{msg}");
    let dir = PathView {
        path: "/user/alice".into(),
        chain: v.chain[..3].to_vec(),
        exists: true,
    };
    denied_msg(check(as_user("bob"), &dir, &Action::List));
    check(as_user("alice"), &dir, &Action::List).unwrap();
    check(admin(), &dir, &Action::List).unwrap();
}

#[test]
fn listing_needs_read_and_search_on_the_directory() {
    let mut dir = PathView {
        path: "/d".into(),
        chain: vec![root(), attrs("alice", "alice", 0o711, true)],
        exists: true,
    };
    denied_msg(check(as_user("bob"), &dir, &Action::List));
    dir.chain[1].mode = 0o755;
    check(as_user("bob"), &dir, &Action::List).unwrap();
}

#[test]
fn group_bits_apply_to_members_only() {
    let v = PathView {
        path: "/f".into(),
        chain: vec![root(), attrs("alice", "bob", 0o640, false)],
        exists: true,
    };
    // bob is a member of group bob; carol of no group but her own.
    check(as_user("bob"), &v, &Action::Read).unwrap();
    denied_msg(check(as_user("carol"), &v, &Action::Read));
}

#[test]
fn owner_class_does_not_fall_through_to_other_bits() {
    let v = PathView {
        path: "/f".into(),
        chain: vec![root(), attrs("alice", "alice", 0o044, false)],
        exists: true,
    };
    denied_msg(check(as_user("alice"), &v, &Action::Read));
    check(as_user("bob"), &v, &Action::Read).unwrap();
}

#[test]
fn create_needs_write_on_the_deepest_existing_ancestor() {
    // /user/alice exists, /user/alice/new/f does not.
    let v = PathView {
        path: "/user/alice/new/f".into(),
        chain: alice_file(0o755, 0o644).chain[..3].to_vec(),
        exists: false,
    };
    check(as_user("alice"), &v, &Action::Create).unwrap();
    check(as_user("alice"), &v, &Action::Mkdirs).unwrap();
    let msg = denied_msg(check(as_user("bob"), &v, &Action::Create));
    assert!(msg.contains("write (w) on the parent"), "{msg}");
    assert!(msg.contains("/user/alice "), "{msg}");
    denied_msg(check(as_user("bob"), &v, &Action::Mkdirs));
}

#[test]
fn overwriting_needs_write_on_the_parent_and_mkdirs_of_an_existing_dir_passes() {
    let v = alice_file(0o755, 0o666);
    denied_msg(check(as_user("bob"), &v, &Action::Create));
    check(as_user("alice"), &v, &Action::Create).unwrap();
    // Write on the parent is not enough to replace a file one may not write.
    let mut shared = alice_file(0o777, 0o444);
    let msg = denied_msg(check(as_user("bob"), &shared, &Action::Create));
    assert!(msg.contains("to overwrite"), "{msg}");
    shared.chain[3].mode = 0o666;
    check(as_user("bob"), &shared, &Action::Create).unwrap();
    let dir = PathView {
        path: "/user/alice".into(),
        chain: v.chain[..3].to_vec(),
        exists: true,
    };
    check(as_user("bob"), &dir, &Action::Mkdirs).unwrap();
}

#[test]
fn write_is_for_the_owner_or_a_holder_of_w() {
    let v = alice_file(0o755, 0o444);
    check(as_user("alice"), &v, &Action::Write).unwrap();
    denied_msg(check(as_user("bob"), &v, &Action::Write));
    let open = alice_file(0o755, 0o666);
    check(as_user("bob"), &open, &Action::Write).unwrap();
}

#[test]
fn remove_needs_write_on_the_parent() {
    let v = alice_file(0o755, 0o777);
    check(as_user("alice"), &v, &Action::Remove).unwrap();
    let msg = denied_msg(check(as_user("bob"), &v, &Action::Remove));
    assert!(msg.contains("write (w) on the parent"), "{msg}");
    check(admin(), &v, &Action::Remove).unwrap();
}

#[test]
fn sticky_directory_keeps_entries_to_their_owners() {
    let tmp = attrs("admin", SUPERGROUP, 0o1777, true);
    let v = PathView {
        path: "/tmp/f".into(),
        chain: vec![root(), tmp, attrs("alice", SUPERGROUP, 0o644, false)],
        exists: true,
    };
    check(as_user("alice"), &v, &Action::Remove).unwrap();
    let msg = denied_msg(check(as_user("bob"), &v, &Action::Remove));
    assert!(msg.contains("sticky"), "{msg}");
    let mut owned_dir = v.clone();
    owned_dir.chain[1].owner = "bob".into();
    check(as_user("bob"), &owned_dir, &Action::Remove).unwrap();
    check(admin(), &v, &Action::Remove).unwrap();
    // Anyone may still create in it.
    let new = PathView {
        path: "/tmp/g".into(),
        chain: v.chain[..2].to_vec(),
        exists: false,
    };
    check(as_user("bob"), &new, &Action::Create).unwrap();
}

#[test]
fn only_the_owner_changes_the_mode() {
    let v = alice_file(0o755, 0o666);
    check(as_user("alice"), &v, &Action::Chmod).unwrap();
    let msg = denied_msg(check(as_user("bob"), &v, &Action::Chmod));
    assert!(msg.contains("only the owner may change the mode"), "{msg}");
    check(admin(), &v, &Action::Chmod).unwrap();
}

#[test]
fn only_the_superuser_gives_a_file_away() {
    let v = alice_file(0o755, 0o644);
    let give = Action::Chown {
        owner: Some("bob".into()),
        group: None,
    };
    denied_msg(check(as_user("alice"), &v, &give));
    check(admin(), &v, &give).unwrap();
    // Naming the owner it already has is no change.
    let same = Action::Chown {
        owner: Some("alice".into()),
        group: Some("alice".into()),
    };
    check(as_user("alice"), &v, &same).unwrap();
}

#[test]
fn the_owner_changes_the_group_only_to_its_own_groups() {
    let v = alice_file(0o755, 0o644);
    let own = Action::Chown {
        owner: None,
        group: Some("alice".into()),
    };
    check(as_user("alice"), &v, &own).unwrap();
    let other = Action::Chown {
        owner: None,
        group: Some("bob".into()),
    };
    let msg = denied_msg(check(as_user("alice"), &v, &other));
    assert!(msg.contains("not a member"), "{msg}");
    denied_msg(check(as_user("bob"), &v, &own));
    let superg = Action::Chown {
        owner: None,
        group: Some(SUPERGROUP.into()),
    };
    denied_msg(check(as_user("alice"), &v, &superg));
}

#[test]
fn a_missing_path_is_left_to_the_operation_to_report() {
    let v = PathView {
        path: "/nope".into(),
        chain: vec![root()],
        exists: false,
    };
    check(as_user("bob"), &v, &Action::Read).unwrap();
    check(as_user("bob"), &v, &Action::Remove).unwrap();
    check(as_user("bob"), &v, &Action::Chmod).unwrap();
}

#[test]
fn modes_print_and_parse_as_ls_and_chmod_do() {
    assert_eq!(mode_string(0o755), "rwxr-xr-x");
    assert_eq!(mode_string(0o600), "rw-------");
    assert_eq!(mode_string(0o1777), "rwxrwxrwt");
    assert_eq!(mode_string(0o1770), "rwxrwx--T");
    assert_eq!(parse_mode("0600").unwrap(), 0o600);
    assert_eq!(parse_mode("1777").unwrap(), 0o1777);
    for bad in ["", "9", "rwx", "17777", "-1"] {
        assert!(parse_mode(bad).is_err(), "{bad}");
    }
}

#[test]
fn membership_has_no_group_database() {
    assert!(is_member("alice", "alice"));
    assert!(!is_member("alice", "bob"));
    assert!(!is_member("alice", SUPERGROUP));
    assert!(is_member("admin", SUPERGROUP));
}
