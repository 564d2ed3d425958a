package android.os;

public final class Bundle {
    public Object get(String key) { throw new RuntimeException("Stub!"); }
}
