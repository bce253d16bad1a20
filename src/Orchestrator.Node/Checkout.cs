using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Node;

/// <summary>Where this build sits in a source checkout, and free loopback ports for local clusters.</summary>
public static class Checkout
{
    /// <summary>The folder holding Orchestrator.sln above this build, or null for an installed build.</summary>
    public static string? FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Orchestrator.sln")))
            {
                return dir.FullName;
            }
        }

        return null;
    }

    public static string Root() =>
        FindRoot() ?? throw new InvalidOperationException("not running from a checkout (no Orchestrator.sln above this build)");

    /// <summary>A port free right now on 127.0.0.1 (a small race with other programs is accepted in benchmarks and tests).</summary>
    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
