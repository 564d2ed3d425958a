// Package android holds no Go code: it is the Android binding of libsnapvlm
// (jni/snapvlm_jni.c, the Kotlin classes under src/ and the example app under
// example/; see docs/android.md), and its test, which compiles the JNI glue
// against the JDK's jni.h and the Kotlin sources with kotlinc against stub
// Android classes (stubs/), then runs the binding on a desktop JVM with a
// generated model.
package android
