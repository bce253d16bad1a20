using Akka.Configuration;
using Microsoft.Data.Sqlite;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Settings;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Tests;

/// <summary>Settings only read config: the store's file and the images' files are touched by whoever starts the node.</summary>
public sealed class StoreAndImageSettingsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Completing_the_config_names_the_sqlite_file_without_creating_it()
    {
        var config = OrchestratorConfig.Complete(OrchestratorConfig.Load([]), _dir.Path, ["host", "control"]);

        Assert.Contains(Path.Combine(_dir.Path, "orchestrator.db"), config.GetString("akka.persistence.journal.sql.connection-string"));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.Path));
    }

    [Fact]
    public void Preparing_the_sqlite_store_makes_its_files_owner_only_and_write_ahead_logged()
    {
        var config = OrchestratorConfig.Load([]);

        SqliteStoreFile.Prepare(config, _dir.Path);

        // The journal's file and the snapshots' own beside it.
        var journal = OrchestratorConfig.StoreConnectionString(config, _dir.Path);
        foreach (var (file, connectionString) in new[]
                 {
                     (Path.Combine(_dir.Path, "orchestrator.db"), journal),
                     (Path.Combine(_dir.Path, "orchestrator.snapshots.db"), SqliteSnapshotFile.ConnectionString(journal)),
                 })
        {
            Assert.Equal(OwnerOnlyFiles.Mode, File.GetUnixFileMode(file));
            using var connection = new SqliteConnection(connectionString);
            connection.Open();
            using var mode = connection.CreateCommand();
            mode.CommandText = "PRAGMA journal_mode;";
            Assert.Equal("wal", mode.ExecuteScalar());
        }
    }

    [Fact]
    public void Preparing_a_postgres_store_touches_no_file()
    {
        var config = ConfigurationFactory.ParseString("""
            orchestrator.persistence.provider = postgres
            orchestrator.persistence.postgres-connection = "Host=db.invalid"
            """).WithFallback(OrchestratorConfig.Load([]));

        SqliteStoreFile.Prepare(config, _dir.Path);

        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.Path));
    }

    [Fact]
    public void The_image_catalog_takes_every_configured_image_without_looking_at_files()
    {
        var catalog = ImageCatalog.Create(ConfigurationFactory.ParseString("""
            demo { kernel = "demo/vmlinuz", initrd = "demo/initrd.img", description = "the demo" }
            """), "/nowhere/images");

        var demo = Assert.Single(catalog.All);
        Assert.Equal(("demo", "/nowhere/images/demo/vmlinuz", "/nowhere/images/demo/initrd.img"), (demo.Name, demo.KernelPath, demo.InitrdPath));
        Assert.Empty(catalog.Problems);
    }

    [Fact]
    public void Images_with_missing_files_are_left_out_and_each_is_named_with_what_is_missing()
    {
        var catalog = ImageCatalog.Create(ConfigurationFactory.ParseString("""
            demo { kernel = "demo/vmlinuz", initrd = "demo/initrd.img" }
            broken { kernel = "broken/vmlinuz", initrd = "broken/initrd.img" }
            """), "/images");

        var checkedCatalog = catalog.LeaveOutMissing(image => image.Name == "broken" ? [image.InitrdPath] : []);

        Assert.Equal(["demo"], checkedCatalog.Names);
        Assert.Null(checkedCatalog.Find("broken"));
        Assert.Equal(
            ["image 'broken' left out: missing /images/broken/initrd.img (the images/build-*-image.sh scripts build the shipped images)"],
            checkedCatalog.Problems);
    }

    [Fact]
    public void The_missing_files_of_an_image_are_those_that_do_not_exist()
    {
        var kernel = Path.Combine(_dir.Path, "vmlinuz");
        File.WriteAllText(kernel, "k");
        var image = new GuestImage("demo", kernel, Path.Combine(_dir.Path, "initrd.img"), "");

        Assert.Equal([image.InitrdPath], GuestImageFiles.Missing(image));
    }

    [Fact]
    public void An_image_with_a_root_disk_carries_it_and_its_kernel_command_line_and_misses_it_when_absent()
    {
        var catalog = ImageCatalog.Create(ConfigurationFactory.ParseString("""
            debian { kernel = "debian/vmlinuz", initrd = "debian/initrd.img", root-disk = "debian/rootfs.qcow2", append = "root=/dev/vda ro" }
            demo { kernel = "demo/vmlinuz", initrd = "demo/initrd.img" }
            """), _dir.Path);

        var debian = catalog.Find("debian")!;
        Assert.Equal((Path.Combine(_dir.Path, "debian", "rootfs.qcow2"), "root=/dev/vda ro"), (debian.RootDiskPath, debian.KernelAppend));
        Assert.Equal((null, null), (catalog.Find("demo")!.RootDiskPath, catalog.Find("demo")!.KernelAppend));

        Directory.CreateDirectory(Path.Combine(_dir.Path, "debian"));
        File.WriteAllText(debian.KernelPath, "k");
        File.WriteAllText(debian.InitrdPath, "i");
        Assert.Equal([debian.RootDiskPath!], GuestImageFiles.Missing(debian));
    }
}
