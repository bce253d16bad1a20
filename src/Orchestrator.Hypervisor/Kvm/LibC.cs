// The few libc calls the KVM engine needs, as source-generated P/Invokes (no runtime marshalling, trim-safe).
using System.Runtime.InteropServices;

namespace Orchestrator.Hypervisor.Kvm;

internal static partial class LibC
{
    private const string Library = "libc";

    public const int O_RDWR = 0x2;
    public const int O_CLOEXEC = 0x80000;

    public const int PROT_READ = 0x1;
    public const int PROT_WRITE = 0x2;
    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MAP_NORESERVE = 0x4000;
    public static readonly nint MAP_FAILED = -1;

    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int E2BIG = 7;

    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    /// <summary>
    /// ioctl is variadic in C; on x86-64 SysV a variadic callee reads its third integer argument from the same register
    /// (rdx) as a fixed one, and glibc's ioctl is a plain syscall wrapper, so the fixed three-argument form is exact.
    /// </summary>
    [LibraryImport(Library, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, nint argument);

    [LibraryImport(Library, EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport(Library, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint address, nuint length);

    [LibraryImport(Library, EntryPoint = "mincore", SetLastError = true)]
    public static unsafe partial int Mincore(nint address, nuint length, byte* vector);

    // gettid and tgkill through syscall(2): glibc exports them as functions only from 2.30, and a host with an older
    // one (RHEL 8, Debian 10) would throw EntryPointNotFoundException on a vCPU thread. The numbers are x86-64's, the
    // only architecture the engine runs on.
    private const long SysGettid = 186;
    private const long SysTgkill = 234;

    [LibraryImport(Library, EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long arg1, long arg2, long arg3);

    public static int Gettid() => (int)Syscall(SysGettid, 0, 0, 0);

    /// <returns>0, or -1 with errno set.</returns>
    public static int Tgkill(int tgid, int tid, int signal) => (int)Syscall(SysTgkill, tgid, tid, signal);

    /// <summary>SIGRTMIN as glibc hands it out (glibc keeps the first two real-time signals for itself).</summary>
    [LibraryImport(Library, EntryPoint = "__libc_current_sigrtmin")]
    public static partial int CurrentSigRtMin();

    [LibraryImport(Library, EntryPoint = "__libc_current_sigrtmax")]
    public static partial int CurrentSigRtMax();

    /// <summary>sigaction(2) used only to read a disposition (act = NULL); <paramref name="oldAction"/> points at a glibc struct sigaction.</summary>
    [LibraryImport(Library, EntryPoint = "sigaction", SetLastError = true)]
    public static partial int Sigaction(int signal, nint action, nint oldAction);

    /// <summary>glibc's struct sigaction on x86-64 is 152 bytes, its handler the first pointer.</summary>
    public const int SigactionSize = 152;

    public static readonly nint SIG_DFL = 0;
    public static readonly nint SIG_IGN = 1;

    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
