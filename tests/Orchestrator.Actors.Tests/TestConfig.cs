using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Settings;

namespace Orchestrator.Actors.Tests;

/// <summary>The project's real HOCON (config/*.conf), with a local provider and a private SQLite file per test.</summary>
internal static class TestConfig
{
    public static Config Serialization() =>
        ConfigurationFactory.ParseString("akka.actor.provider = local").WithFallback(OrchestratorConfig.Load([]));

    /// <summary>Persistence on a real SQLite file in <paramref name="dataDir"/>, readied as the node readies it.</summary>
    public static Config Persistent(string dataDir)
    {
        var loaded = OrchestratorConfig.Load([]);
        SqliteStoreFile.Prepare(loaded, dataDir);
        return ConfigurationFactory.ParseString("""
                akka.actor.provider = local
                akka.loglevel = INFO
                # test.sh runs these tests beside the node tests: a scheduler's recovery may wait for the CPU.
                akka.test.single-expect-default = 30s
                """)
            .WithFallback(OrchestratorConfig.Complete(loaded, dataDir, []));
    }
}

/// <summary>A temp directory with a short path (unix sockets), removed at the end.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = Directory.CreateTempSubdirectory("orc").FullName;
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

/// <summary>A TestKit whose actor system persists to a real SQLite file in a temp directory of its own.</summary>
public abstract class PersistentTestKit : TestKit
{
    private readonly TempDir _dir;

    protected PersistentTestKit() : this(new TempDir(), null)
    {
    }

    /// <param name="extra">HOCON that wins over the project's (e.g. a test's own serializer).</param>
    protected PersistentTestKit(Config extra) : this(new TempDir(), extra)
    {
    }

    private PersistentTestKit(TempDir dir, Config? extra) : base(extra is null ? TestConfig.Persistent(dir.Path) : extra.WithFallback(TestConfig.Persistent(dir.Path)))
    {
        _dir = dir;
    }

    /// <summary>The data directory: the journal's SQLite file is in it.</summary>
    protected string DataDirectory => _dir.Path;

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        _dir.Dispose();
    }
}
