using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Node.Tests;

/// <summary>
/// A real single-node Ceph cluster for a test: one monitor on a free loopback port and one OSD on a file-backed
/// bluestore (Debian's ceph-mon and ceph-osd, installed by scripts/prerequisites.sh --tests), one replica, no cephx
/// (loopback only), and one pool for rbd. Both daemons run in the foreground as this object's children and end with it.
/// </summary>
public sealed class CephCluster : IAsyncDisposable
{
    public const string Pool = "orch";

    private readonly string _root;
    private readonly List<Process> _daemons = [];

    private CephCluster(string root) => _root = root;

    public string ConfPath => Path.Combine(_root, "ceph.conf");

    public static async Task<CephCluster> StartAsync()
    {
        foreach (var tool in new[] { "ceph-mon", "ceph-osd", "ceph", "rbd", "monmaptool" })
        {
            if (!File.Exists(Path.Combine("/usr/bin", tool)))
            {
                throw new InvalidOperationException($"{tool} is not installed (Debian packages ceph-mon, ceph-osd, ceph-common): run scripts/prerequisites.sh --tests");
            }
        }

        var cluster = new CephCluster(Directory.CreateTempSubdirectory("orceph").FullName);
        try
        {
            await cluster.BootstrapAsync();
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private async Task BootstrapAsync()
    {
        var fsid = Guid.NewGuid().ToString();
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        foreach (var dir in new[] { "mon", "osd0", "run", "log" })
        {
            Directory.CreateDirectory(Path.Combine(_root, dir));
        }

        File.WriteAllText(ConfPath, $"""
            [global]
            fsid = {fsid}
            mon host = v2:127.0.0.1:{port}
            auth cluster required = none
            auth service required = none
            auth client required = none
            osd pool default size = 1
            osd pool default min size = 1
            mon allow pool size one = true
            mon allow pool delete = true
            mon data avail warn = 1
            mon data avail crit = 0
            osd crush chooseleaf type = 0
            run dir = {_root}/run
            admin socket = {_root}/run/$name.asok
            log file = {_root}/log/$name.log
            mon data = {_root}/mon
            osd data = {_root}/osd$id
            osd objectstore = bluestore
            bluestore block create = true
            bluestore block size = 4294967296
            osd memory target = 536870912
            bluestore cache autotune = false
            bluestore cache size = 134217728
            ms bind ipv6 = false

            """);
        var monmap = Path.Combine(_root, "monmap");
        await RunAsync("monmaptool", "--create", "--addv", "a", $"[v2:127.0.0.1:{port}]", "--fsid", fsid, monmap);
        await RunAsync("ceph-mon", "-c", ConfPath, "--mkfs", "-i", "a", "--monmap", monmap);
        Daemon("ceph-mon", "-f", "-c", ConfPath, "-i", "a");
        var osdUuid = Guid.NewGuid().ToString();
        var id = (await RunAsync("ceph", "-c", ConfPath, "--connect-timeout", "30", "osd", "new", osdUuid)).Trim();
        await RunAsync("ceph-osd", "-c", ConfPath, "-i", id, "--mkfs", "--osd-uuid", osdUuid);
        Daemon("ceph-osd", "-f", "-c", ConfPath, "-i", id);
        await RunAsync("ceph", "-c", ConfPath, "osd", "pool", "create", Pool, "8");
        await RunAsync("ceph", "-c", ConfPath, "osd", "pool", "application", "enable", Pool, "rbd");
        // The pool takes writes once its placement groups are active on the OSD: an image made and removed says so.
        await RunAsync("rbd", "-c", ConfPath, "create", "--size", "1M", $"{Pool}/ready");
        await RunAsync("rbd", "-c", ConfPath, "rm", "--no-progress", $"{Pool}/ready");
    }

    /// <summary>The images in the pool, by name.</summary>
    public async Task<IReadOnlyList<string>> ImagesAsync() =>
        (await RunAsync("rbd", "-c", ConfPath, "ls", Pool)).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>How many clients watch the image (hold it open read-write), as <c>rbd status</c> lists them.</summary>
    public async Task<int> WatchersAsync(string image) =>
        (await RunAsync("rbd", "-c", ConfPath, "status", $"{Pool}/{image}")).Split('\n').Count(line => line.TrimStart().StartsWith("watcher=", StringComparison.Ordinal));

    private void Daemon(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _daemons.Add(process);
    }

    /// <summary>Runs a Ceph tool with a deadline (a cluster that never forms must not hang the suite).</summary>
    private static async Task<string> RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 2 minutes: {await stderr}");
        }

        return process.ExitCode == 0
            ? await stdout
            : throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({process.ExitCode}): {await stderr}{await stdout}");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var daemon in Enumerable.Reverse(_daemons))
        {
            try
            {
                daemon.Kill(entireProcessTree: true);
                await daemon.WaitForExitAsync();
            }
            catch (InvalidOperationException)
            {
                // already gone
            }

            daemon.Dispose();
        }

        Directory.Delete(_root, recursive: true);
    }
}
