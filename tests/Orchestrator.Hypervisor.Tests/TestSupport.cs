// Shared test plumbing: the repository and its demo image, short temp dirs, polling with upper bounds.
using System.Diagnostics;

namespace Orchestrator.Hypervisor.Tests;

internal static class Repo
{
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Orchestrator.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no Orchestrator.sln above {AppContext.BaseDirectory}");
    }
}

/// <summary>The demo guest built by images/build-demo-image.sh, built once on first use.</summary>
internal static class DemoImage
{
    private static readonly SemaphoreSlim BuildLock = new(1, 1);
    private static GuestImage? _image;

    public static async Task<GuestImage> GetAsync()
    {
        await BuildLock.WaitAsync();
        try
        {
            return _image ??= await BuildAsync();
        }
        finally
        {
            BuildLock.Release();
        }
    }

    private static async Task<GuestImage> BuildAsync()
    {
        var outDir = Path.Combine(Repo.Root, "images", "out", "demo");
        var kernel = Path.Combine(outDir, "vmlinuz");
        var initrd = Path.Combine(outDir, "initrd.img");
        var script = Path.Combine(Repo.Root, "images", "build-demo-image.sh");

        // The script is idempotent and cheap when the image is current; a file lock keeps concurrent
        // test processes (several test projects) from building at once.
        Directory.CreateDirectory(Path.Combine(Repo.Root, "images", "out"));
        await using (var _ = await LockFileAsync(Path.Combine(Repo.Root, "images", "out", ".build.lock")))
        {
            var start = new ProcessStartInfo("bash", [script, outDir])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var build = Process.Start(start)!;
            var stdout = build.StandardOutput.ReadToEndAsync();
            var stderr = build.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
            await build.WaitForExitAsync(timeout.Token);
            if (build.ExitCode != 0 || !File.Exists(kernel) || !File.Exists(initrd))
            {
                throw new InvalidOperationException(
                    $"images/build-demo-image.sh failed (exit {build.ExitCode}); the QEMU tests need {kernel} and {initrd}:\n{await stdout}\n{await stderr}");
            }
        }

        return new GuestImage("demo", kernel, initrd, "busybox demo guest");
    }

    private static async Task<FileStream> LockFileAsync(string path)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                await Task.Delay(200, timeout.Token);
            }
        }
    }
}

/// <summary>Short directories under /tmp: unix socket paths must stay under ~100 characters.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine("/tmp", "orq-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class Eventually
{
    /// <summary>Polls until <paramref name="condition"/> holds; the bound only catches hangs, it is not a speed check.</summary>
    public static Task HoldsAsync(Func<bool> condition, string failure, TimeSpan? within = null) =>
        HoldsAsync(() => Task.FromResult(condition()), failure, within);

    public static async Task HoldsAsync(Func<Task<bool>> condition, string failure, TimeSpan? within = null)
    {
        using var bound = new CancellationTokenSource(within ?? TimeSpan.FromSeconds(60));
        while (!await condition())
        {
            try
            {
                await Task.Delay(50, bound.Token);
            }
            catch (OperationCanceledException)
            {
                if (await condition())
                {
                    return;
                }

                throw new Xunit.Sdk.XunitException(failure);
            }
        }
    }
}

/// <summary>Collects a VM's events; lets a test wait for one with a clear message when it never comes.</summary>
public sealed class EventRecorder
{
    private readonly IVmHandle _handle;
    private readonly List<VmEvent> _events = [];
    private readonly SemaphoreSlim _changed = new(0);

    public EventRecorder(IVmHandle handle)
    {
        _handle = handle;
        handle.Subscribe(Record);
    }

    public IReadOnlyList<VmEvent> Events
    {
        get
        {
            lock (_events)
            {
                return [.. _events];
            }
        }
    }

    private void Record(VmEvent vmEvent)
    {
        lock (_events)
        {
            _events.Add(vmEvent);
        }

        _changed.Release();
    }

    public async Task<T> WaitForAsync<T>(Func<T, bool> match, string what, TimeSpan? within = null)
        where T : VmEvent
    {
        using var bound = new CancellationTokenSource(within ?? TimeSpan.FromSeconds(90));
        while (true)
        {
            var found = Events.OfType<T>().FirstOrDefault(match);
            if (found is not null)
            {
                return found;
            }

            try
            {
                await _changed.WaitAsync(bound.Token);
            }
            catch (OperationCanceledException)
            {
                var tail = string.Join("\n  ", Events.TakeLast(25));
                // On the KVM engine, say what the vCPUs were doing (crawling accelerator, hung guest, exit storm).
                var stall = _handle is Orchestrator.Hypervisor.Kvm.KvmVm kvm
                    ? $"\nKVM stall report: {await Orchestrator.Hypervisor.Kvm.KvmStallReport.DescribeAsync(kvm)}"
                    : "";
                throw new Xunit.Sdk.XunitException($"{what} never happened. Last events:\n  {tail}{stall}");
            }
        }
    }

    public Task<VmEvent.ConsoleLine> WaitForBannerAsync(string name) =>
        WaitForAsync<VmEvent.ConsoleLine>(
            line => line.Text == $"ORCHESTRATOR-GUEST-READY {name}",
            $"the guest banner 'ORCHESTRATOR-GUEST-READY {name}' on the serial console");

    public Task<VmEvent.Exited> WaitForExitAsync() =>
        WaitForAsync<VmEvent.Exited>(_ => true, "the Exited event");
}

internal static class Processes
{
    public static bool Exists(int pid) =>
        File.Exists($"/proc/{pid}/stat") && ProcStat.ParseState(SafeRead($"/proc/{pid}/stat")) is not ('Z' or 'X' or '?');

    public static void KillQuietly(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
        }
    }

    private static string SafeRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return "0 (x) ?";
        }
    }
}

/// <summary>A test that needs qemu-system-x86_64; skipped, saying so, where it is not installed.</summary>
public sealed class QemuFactAttribute : FactAttribute
{
    public QemuFactAttribute()
    {
        if (!QemuInstalled)
        {
            Skip = "qemu-system-x86_64 is not on PATH (apt-get install qemu-system-x86)";
        }
    }

    public static bool QemuInstalled { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Any(dir => File.Exists(Path.Combine(dir, "qemu-system-x86_64")));
}

internal static class Specs
{
    public static VmLaunchSpec For(GuestImage image, string name, int vcpus = 1, bool burn = false, long epoch = 1) =>
        new(Domain.VmId.New(), name, vcpus, 128, image, new Domain.Epoch(epoch), burn);
}
