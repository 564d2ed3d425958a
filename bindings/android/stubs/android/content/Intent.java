package android.content;

import android.os.Bundle;

public class Intent {
    public Intent(String action) { throw new RuntimeException("Stub!"); }
    public Bundle getExtras() { throw new RuntimeException("Stub!"); }
}
