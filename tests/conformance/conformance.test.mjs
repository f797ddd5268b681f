// The official Durable Streams conformance suite, run against the server
// whose base URL run.mjs puts in CONFORMANCE_TEST_URL.
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.CONFORMANCE_TEST_URL
if (!baseUrl) throw new Error("CONFORMANCE_TEST_URL is not set: run `node run.mjs`")

runConformanceTests({ baseUrl, subscriptions: true })
