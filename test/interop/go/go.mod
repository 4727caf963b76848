module gw.test/interop

go 1.19

require github.com/hashicorp/yamux v0.1.2
