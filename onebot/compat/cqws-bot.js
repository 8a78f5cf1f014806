// A bot on cq-websocket, the CQHTTP-era Node SDK: it opens the forward
// WebSocket's /api and /event apart (token in the query), reads messages as
// CQ-code strings, and replies by returning a string from the handler (the
// SDK then calls send_msg with the event as parameters). It answers
// "ping <n>" in a group with "pong <n> from cq-websocket" and a face.
//
// Environment: ONEBOT_ENDPOINT (ws://host:port), ONEBOT_TOKEN, ONEBOT_SELF_ID.
// It prints "bot online" when both sockets are open and "replied <text>".
const { CQWebSocket } = require('cq-websocket')

const bot = new CQWebSocket({
  baseUrl: process.env.ONEBOT_ENDPOINT,
  accessToken: process.env.ONEBOT_TOKEN || '',
  qq: process.env.ONEBOT_SELF_ID,
  reconnectionDelay: 200,
})

bot.on('ready', () => console.log('bot online'))
bot.on('error', (err) => console.error('error', err && err.message))
bot.on('message.group', (e, context) => {
  const m = /^ping (\S+)/.exec(context.raw_message || '')
  if (!m) return
  const text = `pong ${m[1]} from cq-websocket`
  console.log('replied ' + text)
  return `${text}[CQ:face,id=14]`
})

bot.connect()
process.on('SIGTERM', () => { bot.disconnect(); process.exit(0) })
