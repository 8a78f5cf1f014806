# A qqbot plugin (ours, loaded by qqbot_hosts.py): once the bot runs it lists its
# contacts into $QQSIM_MARKS/contacts.json; it answers every message that starts with
# "ping" with "pong " and the message.
import json
import os


def onStartupComplete(bot):
    out = {}
    for kind in ("buddy", "group", "discuss"):
        out[kind] = [c.name for c in (bot.List(kind) or [])]
    path = os.path.join(os.environ["QQSIM_MARKS"], "contacts.json")
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, ensure_ascii=False)
    os.rename(path + ".tmp", path)


def onQQMessage(bot, contact, member, content):
    if content.startswith("ping"):
        bot.SendTo(contact, "pong " + content)
