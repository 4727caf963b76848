module gw.test/interop

go 1.19

require (
	github.com/gorilla/websocket v1.5.0
	github.com/hashicorp/yamux v0.1.2
)
