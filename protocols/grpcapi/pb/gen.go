// Package pb is the generated code of messages.proto, the upstream
// gateway's gRPC connector API. Regenerate with `go generate` (needs protoc;
// the plugins come from go.mod's tool block); the output is committed so
// building needs no protoc.
package pb

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --plugin=protoc-gen-go-grpc=$(go tool -n protoc-gen-go-grpc) --go_out=paths=source_relative:. --go-grpc_out=paths=source_relative:. messages.proto"
