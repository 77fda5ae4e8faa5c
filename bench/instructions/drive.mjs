// Sends N GETs one after another on one keep-alive connection (1,000 customers in turn), then
// GET /exit. One request at a time, so every run does the same work whatever the machine's load.
import { connect } from 'node:net'

const [port, total] = [Number(process.argv[2]), Number(process.argv[3])]
const socket = connect(port, '127.0.0.1')
let answered = 0
let received = ''
const send = () => socket.write(`GET / HTTP/1.1\r\nHost: bench\r\nx-customer: agr_${answered % 1000}\r\n\r\n`)
socket.on('connect', send)
socket.on('data', chunk => {
  received += chunk
  let end
  while ((end = received.indexOf('{"hello":"world"}')) !== -1) {
    received = received.slice(end + 17)
    if (++answered < total) send()
    else socket.write('GET /exit HTTP/1.1\r\nHost: bench\r\n\r\n')
  }
})
socket.on('close', () => process.exit(0))
socket.on('error', () => process.exit(0))
