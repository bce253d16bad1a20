using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Node.Tests;

/// <summary>
/// A real PostgreSQL server of the test's own (Debian's postgresql package): a copy of one initdb per test run in a temp dir, run as the
/// postgres user on a free port of <see cref="Address"/> (loopback unless the test names another, e.g. a bridge that
/// network namespaces reach it over), stopped and removed at the end.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private readonly string _bin;
    private readonly string _root;

    private PostgresServer(string bin, string root, string address, int port)
    {
        _bin = bin;
        _root = root;
        Address = address;
        Port = port;
    }

    public string Address { get; }

    public int Port { get; }

    public string ConnectionString => $"Host={Address};Port={Port};Database=orchestrator;Username=postgres;Pooling=true;Timeout=5";

    private string DataDir => Path.Combine(_root, "data");

    /// <summary>
    /// Starts a server listening only on <paramref name="address"/>; <paramref name="clients"/> (a CIDR such as
    /// 10.233.0.0/24) may connect without a password besides loopback.
    /// </summary>
    public static async Task<PostgresServer> StartAsync(string address = "127.0.0.1", string? clients = null)
    {
        var bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderDescending().FirstOrDefault()
            : null;
        if (bin is null)
        {
            throw new InvalidOperationException("PostgreSQL is not installed (Debian package postgresql): run scripts/prerequisites.sh");
        }

        var root = Directory.CreateTempSubdirectory("orpg").FullName;
        Run("chown", "postgres:postgres", root);
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var server = new PostgresServer(bin, root, address, port);
        Run("cp", "-a", TemplateDataDir(bin), server.DataDir);
        if (clients is not null)
        {
            File.AppendAllText(Path.Combine(server.DataDir, "pg_hba.conf"), $"host all all {clients} trust\n");
        }

        server.Start();
        await Task.CompletedTask;
        return server;
    }

    private static readonly Lock TemplateLock = new();

    /// <summary>
    /// A data dir with the orchestrator database in it, made once per PostgreSQL version and kept for later runs under
    /// the tests' temp dir, that each server copies: initdb and createdb cost seconds a server, a copy a tenth of one.
    /// </summary>
    private static string TemplateDataDir(string bin)
    {
        var template = Path.Combine(Path.GetTempPath(), "orchestrator-tests", $"postgres-{Path.GetFileName(Path.GetDirectoryName(bin))}");
        lock (TemplateLock)
        {
            if (Directory.Exists(template))
            {
                return template;
            }

            Directory.CreateDirectory(Path.GetDirectoryName(template)!);
            var root = Directory.CreateTempSubdirectory("orpg-template").FullName;
            Run("chown", "postgres:postgres", root);
            var data = Path.Combine(root, "data");
            AsPostgres(Path.Combine(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync");
            // Unix socket only, in its own dir: it takes no port.
            AsPostgres(Path.Combine(bin, "pg_ctl"), "-D", data, "-w", "-l", Path.Combine(root, "server.log"), "-o",
                $"-k {root} -c listen_addresses='' -c fsync=off", "start");
            try
            {
                AsPostgres(Path.Combine(bin, "createdb"), "-h", root, "orchestrator");
            }
            finally
            {
                AsPostgres(Path.Combine(bin, "pg_ctl"), "-D", data, "-w", "-m", "fast", "stop");
            }

            try
            {
                Directory.Move(data, template); // whole or not at all, even with another test run beside this one
            }
            catch (IOException) when (Directory.Exists(template))
            {
            }

            Directory.Delete(root, recursive: true);
            return template;
        }
    }

    public void Start() =>
        AsPostgres(Path.Combine(_bin, "pg_ctl"), "-D", DataDir, "-w", "-l", Path.Combine(_root, "server.log"), "-o",
            $"-p {Port} -k {_root} -c listen_addresses={Address} -c fsync=off -c synchronous_commit=off", "start");

    /// <summary>The database goes away (fast shutdown: connections are cut).</summary>
    public void Stop() => AsPostgres(Path.Combine(_bin, "pg_ctl"), "-D", DataDir, "-w", "-m", "fast", "stop");

    public ValueTask DisposeAsync()
    {
        try
        {
            AsPostgres(Path.Combine(_bin, "pg_ctl"), "-D", DataDir, "-w", "-m", "immediate", "stop");
        }
        catch (InvalidOperationException)
        {
            // already stopped
        }

        Directory.Delete(_root, recursive: true);
        return ValueTask.CompletedTask;
    }

    private static void AsPostgres(params string[] command) => Run("runuser", ["-u", "postgres", "--", .. command]);

    private static void Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({process.ExitCode}): {stderr}{stdout.Result}");
        }
    }
}
