"""The UI's conversation list: per-owner isolation, titles, rename, delete, claiming a CLI thread."""

from __future__ import annotations

import aiosqlite

from ui.store import ConversationStore, title_from


async def check_owner_scenario(store) -> None:
    """Owners see only their conversations, newest first; rename, delete and claim respect the owner."""
    await store.setup()
    await store.setup()  # idempotent
    await store.touch("alice", "t1", "查询北京的天气")
    await store.touch("bob", "t2", "What time is it in Tokyo?")
    await store.touch("alice", "t3", "second question")
    assert [c.thread_id for c in await store.list("alice")] == ["t3", "t1"]  # newest first
    assert [c.title for c in await store.list("bob")] == ["What time is it in Tokyo?"]
    await store.touch("alice", "t1", "a later question keeps the first title")
    first = await store.list("alice")
    assert first[0].thread_id == "t1" and first[0].title == "查询北京的天气"

    assert not await store.rename("bob", "t1", "stolen")
    assert await store.rename("alice", "t1", "Beijing weather")
    assert (await store.get("t1")).title == "Beijing weather"
    assert await store.get("nope") is None
    assert not await store.delete("bob", "t1")
    assert await store.delete("alice", "t1")
    assert [c.thread_id for c in await store.list("alice")] == ["t3"]

    assert await store.claim("bob", "cli-thread", "from the CLI")  # unowned thread: claimable
    assert not await store.claim("alice", "cli-thread", "x")  # now bob's: alice cannot open it
    assert await store.claim("bob", "cli-thread", "again")


async def test_owners_see_only_their_conversations(tmp_path):
    async with aiosqlite.connect(tmp_path / "c.sqlite") as conn:
        await check_owner_scenario(ConversationStore(conn))


def test_titles_are_one_short_line():
    assert title_from("  hello\n  world ") == "hello world"
    assert len(title_from("x" * 500)) == 60 and title_from("x" * 500).endswith("…")
    assert title_from("   ") == "New conversation"
