// A koishi bot with the OneBot v11 adapter, written as any koishi user would:
// it answers "ping <n>" in a group with "pong <n> from koishi". It knows
// nothing of qqbridge; the test points it at `bridge onebot`.
//
// Environment:
//   ONEBOT_PROTOCOL  ws (forward WebSocket: the bot dials ONEBOT_ENDPOINT) or
//                    ws-reverse (the bot listens on ONEBOT_PORT, path /onebot)
//   ONEBOT_ENDPOINT  e.g. ws://127.0.0.1:6700/
//   ONEBOT_PORT      e.g. 8080
//   ONEBOT_TOKEN     the access token
//   ONEBOT_SELF_ID   the account's QQ number
// It prints "bot online" once koishi says the bot is online, and
// "replied <text>" after each reply.
const { App } = require('koishi')
const http = require('@koishijs/plugin-http')
const server = require('@koishijs/plugin-server')
const onebot = require('koishi-plugin-adapter-onebot')

const protocol = process.env.ONEBOT_PROTOCOL || 'ws'
const app = new App()
app.plugin(http.default || http)
if (protocol === 'ws-reverse') {
  app.plugin(server.default || server, { host: '127.0.0.1', port: Number(process.env.ONEBOT_PORT) })
}
const config = {
  selfId: process.env.ONEBOT_SELF_ID,
  token: process.env.ONEBOT_TOKEN,
  protocol,
}
if (protocol === 'ws') {
  config.endpoint = process.env.ONEBOT_ENDPOINT
  config.retryInterval = 200
}
app.plugin(onebot.default || onebot, config)

app.on('login-updated', ({ bot }) => {
  if (bot.status === 1) console.log('bot online')
})

app.middleware(async (session, next) => {
  const m = /^ping (\S+)/.exec(session.content || '')
  if (!m || session.isDirect) return next()
  const text = `pong ${m[1]} from koishi`
  await session.send(text)
  console.log('replied ' + text)
})

app.start().catch((err) => {
  console.error(err)
  process.exit(1)
})
process.on('SIGTERM', () => app.stop().then(() => process.exit(0)))
