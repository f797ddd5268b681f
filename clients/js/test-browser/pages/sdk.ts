// The core SDK for the plain test page: window.Parley.
import * as Parley from "../../dist/index.js"

;(globalThis as any).Parley = Parley
