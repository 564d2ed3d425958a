package android.content;

import android.content.pm.ApplicationInfo;
import java.io.File;

public abstract class Context {
    public File getFilesDir() { throw new RuntimeException("Stub!"); }
    public ApplicationInfo getApplicationInfo() { throw new RuntimeException("Stub!"); }
}
