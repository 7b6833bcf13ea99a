# A "package" of the base image: apps source it from /deps/lib.
greeting() {
    echo "greeting 2.0"
}
