from conjunction.views.labels import short_labels


def test_the_repository_name_where_it_is_unique() -> None:
    assert short_labels(["demo.test/acme/core", "demo.test/acme/cli"]) == {
        "demo.test/acme/core": "core",
        "demo.test/acme/cli": "cli",
    }


def test_the_owner_only_where_two_names_collide() -> None:
    assert short_labels(
        ["github.com/acme/core", "gitlab.com/Other/Core", "github.com/acme/http"]
    ) == {
        "github.com/acme/core": "acme/core",
        "gitlab.com/Other/Core": "Other/Core",
        "github.com/acme/http": "http",
    }


def test_subgroups_and_hosts() -> None:
    assert short_labels(
        ["gitlab.com/group/sub/app", "gitlab.com/other/sub/app", "gitlab.com/x/app", "a.dev/x/app"]
    ) == {
        "gitlab.com/group/sub/app": "group/sub/app",
        "gitlab.com/other/sub/app": "other/sub/app",
        "gitlab.com/x/app": "gitlab.com/x/app",
        "a.dev/x/app": "a.dev/x/app",
    }


def test_every_label_is_unambiguous_among_hundreds() -> None:
    names = [f"github.com/org{n % 9}/project-{n % 150}" for n in range(300)]
    labels = short_labels(names)
    assert len({label.casefold() for label in labels.values()}) == len(set(names))
    assert labels["github.com/org0/project-0"] == "org0/project-0"
    assert short_labels([]) == {}
