// Compile-time stand-in for kotlinx.coroutines.flow (kotlinx-coroutines 1.3+),
// which Debian's libkotlinx-coroutines-java (1.0.1) predates. Only the
// declarations the binding and the example use, with the signatures of the
// real library (1.7: Flow.collect(FlowCollector), FlowCollector.emit, flow);
// used by bindings/android's compile check, never shipped: an app builds
// against the real kotlinx-coroutines-android.
package kotlinx.coroutines.flow

interface Flow<out T> {
    suspend fun collect(collector: FlowCollector<T>)
}

interface FlowCollector<in T> {
    suspend fun emit(value: T)
}

fun <T> flow(block: suspend FlowCollector<T>.() -> Unit): Flow<T> = object : Flow<T> {
    override suspend fun collect(collector: FlowCollector<T>) = collector.block()
}
