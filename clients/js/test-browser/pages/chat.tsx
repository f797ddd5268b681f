// A useChat app over Parley: the page the browser tests drive.
// ?parley=<server>&token=<user JWT>&c=<conversation id>
import { useChat } from "@ai-sdk/react"
import { useState } from "react"
import { createRoot } from "react-dom/client"

import { loadMessages, ParleyChatTransport } from "../../dist/ai.js"
import { createClient } from "../../dist/index.js"

const q = new URLSearchParams(location.search)
const parley = createClient({ baseUrl: q.get("parley")!, token: q.get("token"), outboxName: "chat" })
// The app's route (/api/chat) answers each new message with answerChat.
const transport = new ParleyChatTransport({ client: parley, api: "/api/chat" })
;(globalThis as any).transport = transport

function App({ id, initial }: { id: string; initial: any[] }) {
  const { messages, sendMessage, stop, status, error } = useChat({ id, messages: initial, transport, resume: true })
  const [input, setInput] = useState("")
  return (
    <main>
      <ul id="messages">
        {messages.map((m) => (
          <li key={m.id} data-role={m.role}>
            {m.parts.map((p: any) => (p.type === "text" ? p.text : "")).join("")}
          </li>
        ))}
      </ul>
      <p id="status">{status}</p>
      {error ? <p id="error">{String(error.message)}</p> : null}
      <form
        onSubmit={(e) => {
          e.preventDefault()
          void sendMessage({ text: input })
          setInput("")
        }}
      >
        <input id="input" value={input} onChange={(e) => setInput(e.target.value)} />
        <button id="send" type="submit">
          Send
        </button>
        <button id="stop" type="button" onClick={() => void stop()}>
          Stop
        </button>
      </form>
    </main>
  )
}

const id = q.get("c")!
const initial = await loadMessages(parley, id)
createRoot(document.getElementById("root")!).render(<App id={id} initial={initial} />)
