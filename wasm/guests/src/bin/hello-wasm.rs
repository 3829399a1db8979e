//! The `hello-wasm` seed image: Docker's hello-world, told about WebAssembly.
//! Any arguments are echoed back so tests can see they reach the module.

const HELLO_TEXT: &str = "
Berth에서 WebAssembly로 인사드립니다!
이 메시지는 Berth가 wasmtime(WASI)으로 실행한 WebAssembly 모듈에서 나왔습니다.
이 모듈은 리눅스 프로그램이 아니라서, wasmtime이 도는 곳이라면 어느 운영체제에서든 그대로 실행됩니다.

방금 일어난 일:
 1. docker 클라이언트가 Berth 엔진에 \"hello-wasm\" 이미지를 실행해 달라고 요청했습니다.
 2. 엔진이 이미지를 찾았고, 그 설정에 os wasip1 / architecture wasm이라고 적혀 있었습니다.
 3. 엔진이 모듈의 `_start`를 실행하고 그 출력을 여러분의 터미널로 보내 주었습니다.

Hello from WebAssembly on Berth!
This message comes from a WebAssembly module that Berth ran under wasmtime (WASI).
The module is not a Linux program: it runs unchanged wherever wasmtime runs.

What just happened:
 1. The docker client asked the Berth engine to run the image \"hello-wasm\".
 2. The engine found the image; its config says os wasip1 / architecture wasm.
 3. The engine ran the module's `_start` and streamed its output back to your terminal.
";

fn main() {
    print!("{HELLO_TEXT}");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        println!("\nargs: {}", args.join(" "));
    }
}
